"""What an EventDriven run starts after a resume does not depend on whether the resume or the
end of the source it stopped is handled first (pure: a fake source watcher and node runner,
no server). A cold Temporal worker may apply both in one activation, the resume first, where
a replay applies them one workflow task at a time: the commands must come out the same."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from engine.language.models import (
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.runtime.contracts import IncomingEvent
from engine.runtime.event_run import EventRun
from engine.runtime.interpreter import NodeCall, NodeSuccess


def _definition() -> PluginWorkflow:
    return PluginWorkflow(
        workflow_id="resume",
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[
            WorkflowNode(node_id="watch", plugin_id="w", node_type=WorkflowNodeType.Source),
            WorkflowNode(node_id="summarise", plugin_id="p"),
        ],
        connections=[
            WorkflowConnection(
                source_node="watch", target_node="summarise", connection_type=ConnectionType.Event
            )
        ],
    )


async def _until(check: Callable[[], bool]) -> None:
    """Yield to the loop (no clock) until ``check`` holds."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("the run never got there")


async def _resumed(resume_first: bool, sources_first: bool) -> list[tuple[str, Any]]:
    """Pause a run while its source watches, queue two events, then resume it and let the
    source finish stopping, in the given order; return what the run started, in order."""
    started: list[tuple[str, Any]] = []
    stopping = asyncio.Event()
    stopped = asyncio.Event()
    watches = 0

    async def watch(node_id: str, plugin_id: str, config: dict[str, Any], checkpoint: Any) -> Any:
        nonlocal watches
        watches += 1
        started.append(("source", watches))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()  # a source stops when its activity says so, as in the workflow
            stopping.set()
            await stopped.wait()
            raise
        return checkpoint

    async def runner(call: NodeCall) -> NodeSuccess:
        started.append(("pass", call.pass_id))
        return NodeSuccess(output={"n": call.pass_id})

    run = EventRun(
        _definition(),
        execution_id="resume/run-1",
        state=None,
        runner=runner,
        watch=watch,
        clock=lambda: datetime(2026, 12, 4, tzinfo=UTC),
        should_continue_as_new=lambda: False,
    )
    if sources_first:
        run.restart_sources_first()
    task = asyncio.create_task(run.run())
    await _until(lambda: watches == 1)
    run.pause()
    await _until(stopping.is_set)
    run.accept([IncomingEvent(event_id=f"e{i}", payload={"i": i}) for i in range(2)])
    steps: list[Callable[[], None]] = [run.resume, stopped.set]
    for step in steps if resume_first else reversed(steps):
        step()
        await _settled(run)
    await _until(lambda: run.state.processed == 2 and watches == 2)
    task.cancel()
    assert await task is WorkflowExecutionStatus.Cancelled
    return started[1:]  # after the first watch


async def _settled(run: EventRun) -> None:
    """Let the loop take in what just happened (the source may still be stopping): yield
    to it, with no clock, more often than a step of the run takes."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_the_source_restarts_before_the_queued_passes_in_either_order() -> None:
    expected = [("source", 2), ("pass", 1), ("pass", 2)]
    assert await _resumed(resume_first=True, sources_first=True) == expected
    assert await _resumed(resume_first=False, sources_first=True) == expected


async def test_without_it_the_order_depended_on_which_came_first() -> None:
    """The behaviour histories recorded before the patch keep."""
    assert await _resumed(resume_first=False, sources_first=False) == [
        ("source", 2),
        ("pass", 1),
        ("pass", 2),
    ]
    assert await _resumed(resume_first=True, sources_first=False) == [
        ("pass", 1),
        ("pass", 2),
        ("source", 2),
    ]
