"""Starting and killing worker processes in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``tests.helpers.worker_process`` as a child process."""

    def __init__(self, address: str, task_queue: str, side_effects: Path) -> None:
        self.log = side_effects / f"worker-{time.monotonic_ns()}.log"
        self._log_handle = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.helpers.worker_process",
                address,
                task_queue,
                str(side_effects),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log_handle,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            self.kill()
            raise RuntimeError(f"worker did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, like a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._close()

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM and wait for the drain to finish; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._close()
        return code

    def _close(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log_handle.close()

    def stderr_text(self) -> str:
        return self.log.read_text(errors="replace")
