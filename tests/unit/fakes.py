"""In-memory stand-ins for what a workflow injects into the pure runtime: a node runner, a
clock, and a way to let the event loop run until something observable happens (no sleeps,
no wall clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.runtime.interpreter import NodeCall, NodeFailure, NodeSuccess


class Clock:
    """A clock that moves one second each time it is read, so that every timestamp says
    when in the run it was taken."""

    def __init__(self, start: datetime = datetime(2026, 12, 4, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class FakeRunner:
    """Runs node calls in memory and records them.

    A node in ``fail`` fails for good; ``output`` gives a call's output (default: which node
    and pass made it); a key of ``gates`` (a node id) holds its calls until the event is set.
    """

    def __init__(
        self,
        *,
        fail: Callable[[NodeCall], bool] = lambda call: False,
        output: Callable[[NodeCall], dict[str, Any]] | None = None,
        gates: dict[str, asyncio.Event] | None = None,
    ) -> None:
        self.fail = fail
        self.output = output or (lambda call: {"node": call.node_id, "pass": call.pass_id})
        self.gates = gates or {}
        self.calls: list[NodeCall] = []
        self.running = 0
        self.max_running = 0

    async def __call__(self, call: NodeCall) -> NodeSuccess:
        self.calls.append(call)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            gate = self.gates.get(call.node_id)
            if gate is not None:
                await gate.wait()
            else:
                await asyncio.sleep(0)
            if self.fail(call):
                raise NodeFailure(f"{call.node_id} broke", error_type="ValueError", attempts=2)
            return NodeSuccess(self.output(call))
        finally:
            self.running -= 1


async def until(check: Callable[[], bool], what: str = "the run never got there") -> None:
    """Yield to the event loop (no clock) until ``check`` holds."""
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError(what)


async def settle() -> None:
    """Let the loop take in what just happened: yield to it more often than a step of a
    run takes (for checking that something does *not* happen)."""
    for _ in range(50):
        await asyncio.sleep(0)
