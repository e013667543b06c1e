"""Replaying the histories of a scenario in fresh processes under two hash seeds.

One long-lived replayer process per ``PYTHONHASHSEED`` (``python -m tests.chaos.replay``)
takes the path of a histories file on stdin and answers with one JSON line: a process
start costs seconds of imports, a replay milliseconds. The replayer is the one of
tests/replay (configured exactly like the workers), and replay is always uncached.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory

SEEDS = ("0", "4242")
ROOT = Path(__file__).resolve().parents[2]


def write_histories(histories: list[WorkflowHistory], path: Path) -> Path:
    data = [{"id": h.workflow_id, "history": json.loads(h.to_json())} for h in histories]
    path.write_text(json.dumps(data))
    return path


class SeededReplayers:
    """The replayer processes, one per seed; ``async with`` starts and stops them. Their
    stderr goes to ``replayer-<seed>.log`` in ``log_dir``; one that dies is reported as a
    failure of the request it was serving and replaced for the next."""

    def __init__(self, log_dir: Path, seeds: tuple[str, ...] = SEEDS) -> None:
        self.log_dir = log_dir
        self.seeds = seeds
        self._processes: list[asyncio.subprocess.Process] = []
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> SeededReplayers:
        self._processes = [await self._spawn(seed) for seed in self.seeds]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for process in self._processes:
            if process.returncode is None:
                process.kill()
            await process.wait()

    async def _spawn(self, seed: str) -> asyncio.subprocess.Process:
        with (self.log_dir / f"replayer-{seed}.log").open("ab") as log:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.chaos.replay",
                cwd=ROOT,
                env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )

    async def replay(self, histories: list[WorkflowHistory], path: Path) -> list[str]:
        """Replay under every seed; returns the failures (none: all replayed)."""
        write_histories(histories, path)
        async with self._lock:  # one request at a time per process
            answers = await asyncio.gather(*(self._ask(i, path) for i in range(len(self.seeds))))
        failures = []
        for seed, answer in zip(self.seeds, answers, strict=True):
            if answer.get("replayed") != len(histories):
                failures.append(f"seed {seed}: replayed {answer.get('replayed')}/{len(histories)}")
            failures += [f"seed {seed}: {failure}" for failure in answer.get("failures", [])]
        return failures

    async def _ask(self, index: int, path: Path) -> dict[str, Any]:
        process = self._processes[index]
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(f"{path}\n".encode())
            await process.stdin.drain()
            line = await process.stdout.readline()
        except ConnectionError:  # it died before it read the request
            line = b""
        if line:
            answer: dict[str, Any] = json.loads(line)
            return answer
        code = await process.wait()
        self._processes[index] = await self._spawn(self.seeds[index])
        log = self.log_dir / f"replayer-{self.seeds[index]}.log"
        return {"failures": [f"the replayer died (exit code {code}); its log: {log}"]}


async def _serve() -> None:
    from tests.replay.replay_all import replayer

    # Answers get stdout to themselves: the SDK's core logs to fd 1, so it goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        entries = json.loads(Path(line.strip()).read_text())
        histories = [WorkflowHistory.from_json(e["id"], e["history"]) for e in entries]
        results = await replayer().replay_workflows(_each(histories), raise_on_replay_failure=False)
        failures = [f"run {run}: {error}" for run, error in results.replay_failures.items()]
        print(json.dumps({"replayed": len(histories), "failures": failures}), file=answers)
        answers.flush()


async def _each(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history


if __name__ == "__main__":
    asyncio.run(_serve())
    # As in tests/replay/replay_all.py: leave without the finalization that can race with
    # the SDK's runtime threads.
    gc.collect()
    os._exit(0)
