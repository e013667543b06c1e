"""What an ended long-running execution says about its nodes: a node that never ran is not
reported as completed (pure: a fake source watcher and node runner, no server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from engine.base.errors import PluginError, PluginErrorCode
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
from engine.runtime.interpreter import NodeCall, NodeFailure, NodeSuccess


def _definition() -> PluginWorkflow:
    return PluginWorkflow(
        workflow_id="events",
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[
            WorkflowNode(node_id="src", plugin_id="watch", node_type=WorkflowNodeType.Source),
            WorkflowNode(node_id="a", plugin_id="p"),
            WorkflowNode(node_id="b", plugin_id="p"),
            WorkflowNode(node_id="c", plugin_id="p"),
        ],
        connections=[
            WorkflowConnection(
                source_node="src", target_node="a", connection_type=ConnectionType.Event
            ),
            WorkflowConnection(source_node="a", target_node="b"),
            WorkflowConnection(
                source_node="a",
                target_node="c",
                connection_type=ConnectionType.Control,
                properties={"condition": "node == 'elsewhere'"},
            ),
        ],
    )


def _clock() -> datetime:
    return datetime(2026, 12, 4, tzinfo=UTC)


async def _run(events: int, fail_node: str | None) -> EventRun:
    """An EventDriven run whose source delivers ``events`` events, waits until their passes
    ended, then fails for good."""
    run: EventRun

    async def runner(call: NodeCall) -> NodeSuccess:
        if call.node_id == fail_node:
            raise NodeFailure("boom", error_type="ValueError")
        return NodeSuccess(output={"node": call.node_id})

    async def watch(node_id: str, plugin_id: str, config: dict[str, Any], checkpoint: Any) -> Any:
        run.accept([IncomingEvent(event_id=f"e{i}", payload={"i": i}) for i in range(events)])
        # Yield to the passes (on this loop, no clock) until each event's pass has ended.
        while run.state.processed + run.state.failed < events:  # noqa: ASYNC110
            await asyncio.sleep(0)
        raise PluginError(PluginErrorCode.PluginExecutionFailed, "the source broke")

    run = EventRun(
        _definition(),
        execution_id="events/run-1",
        state=None,
        runner=runner,
        watch=watch,
        clock=_clock,
        should_continue_as_new=lambda: False,
    )
    assert await run.run() is WorkflowExecutionStatus.Failed
    return run


async def test_nodes_that_never_ran_are_pending_after_a_failure() -> None:
    context = (await _run(events=0, fail_node=None)).context()
    states = {node_id: state["status"] for node_id, state in context.node_states.items()}
    assert states == {"src": "failed", "a": "pending", "b": "pending", "c": "pending"}
    assert context.node_states["a"]["attempts"] == 0


async def test_a_failed_node_stays_failed_and_what_it_stopped_never_ran() -> None:
    context = (await _run(events=2, fail_node="a")).context()
    states = {node_id: state["status"] for node_id, state in context.node_states.items()}
    assert states == {"src": "failed", "a": "failed", "b": "pending", "c": "pending"}
    assert context.node_states["a"]["attempts"] == 2
    assert context.node_states["b"]["attempts"] == 0


async def test_completed_passes_show_completed_and_skipped_nodes() -> None:
    context = (await _run(events=1, fail_node=None)).context()
    states = {node_id: state["status"] for node_id, state in context.node_states.items()}
    assert states == {"src": "failed", "a": "completed", "b": "completed", "c": "skipped"}
    assert context.node_states["c"]["counters"]["skipped"] == 1
