"""Starting and killing worker processes in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.helpers.worker_process import DEFAULT_REGISTRY

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``tests.helpers.worker_process`` as a child process. Its stderr and, after the
    handshake, its stdout (where the SDK's core writes its warnings) go to :attr:`log`: an
    undrained stdout pipe would fill during an outage and stall the worker.

    Args:
        address: Temporal frontend (or a proxy in front of it).
        task_queue: Queue to poll.
        side_effects: Directory handed to the plugin registry factory; holds the log too.
        registry: ``module:function`` building the worker's plugins from ``side_effects``.
        standby: Start warm but idle; :meth:`go` makes it connect and poll.
        graceful_shutdown: Seconds running nodes get to finish after SIGTERM.
        max_cached_workflows: The workflow cache (0: every task replays the history).
    """

    def __init__(
        self,
        address: str,
        task_queue: str,
        side_effects: Path,
        *,
        registry: str = DEFAULT_REGISTRY,
        standby: bool = False,
        graceful_shutdown: float = 5.0,
        max_cached_workflows: int = 0,
    ) -> None:
        self.log = side_effects / f"worker-{time.monotonic_ns()}.log"
        self._log_handle = self.log.open("ab")  # appends: stdout is copied into it too
        command = [sys.executable, "-m", "tests.helpers.worker_process"]
        command += [address, task_queue, str(side_effects), "--registry", registry]
        command += ["--graceful-shutdown", str(graceful_shutdown)]
        command += ["--max-cached-workflows", str(max_cached_workflows)]
        self.process = subprocess.Popen(
            [*command, "--standby"] if standby else command,
            cwd=ROOT,
            stdin=subprocess.PIPE if standby else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_handle,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self._expect("standby" if standby else "ready")
        if not standby:
            self._drain_stdout()

    @property
    def pid(self) -> int:
        return self.process.pid

    def go(self) -> None:
        """Make a standby worker connect and poll; returns once it polls."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()
        self._expect("ready")
        self._drain_stdout()

    def _drain_stdout(self) -> None:
        def copy(stdout: Any, log: Path) -> None:
            with stdout, log.open("ab") as handle:
                for line in stdout:
                    handle.write(line)
                    handle.flush()

        stdout, self.process.stdout = self.process.stdout, None
        threading.Thread(target=copy, args=(stdout, self.log), daemon=True).start()

    def _expect(self, word: str) -> None:
        """Read stdout up to the line ``word``; other lines (the SDK's core may log there
        while it connects) go to the log."""
        assert self.process.stdout is not None
        while line := self.process.stdout.readline():
            if line.strip() == word.encode():
                return
            with self.log.open("ab") as handle:
                handle.write(line)
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
        if self.process.stdin is not None:
            self.process.stdin.close()  # ends a standby worker's wait for "go"
        code = self.process.wait(timeout)
        self._close()
        return code

    def _close(self) -> None:
        # A drained stdout is closed by its drain at EOF; an undrained one (standby) here.
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self._log_handle.close()

    def stderr_text(self) -> str:
        return self.log.read_text(errors="replace")
