"""EventDriven executions on the real server."""

from __future__ import annotations

import pytest

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from tests.helpers.builders import edge, node
from tests.helpers.waiting import eventually

Status = WorkflowExecutionStatus


def _router(workflow_id: str, **settings: object) -> PluginWorkflow:
    """inbox (source) -> check; check -> big if n > 10; check -> small otherwise."""
    inbox = WorkflowNode(
        node_id="inbox",
        plugin_id="numbers",
        node_type=WorkflowNodeType.Source,
        configuration={"count": 0},
    )
    return PluginWorkflow(
        workflow_id=workflow_id,
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[inbox, node("check"), node("big"), node("small")],
        connections=[
            WorkflowConnection(
                source_node="inbox", target_node="check", connection_type=ConnectionType.Event
            ),
            edge("check", "big", condition="inputs.n > 10"),
            edge("check", "small", condition="inputs.n <= 10"),
        ],
        global_configuration=dict(settings),
    )


async def test_client_events_run_passes_until_cancelled(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = _router(unique("events"))
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    for n in (5, 50, 7):
        await orchestrator.send_event(execution_id, "number", {"n": n}, event_id=f"e{n}")
    await orchestrator.send_event(execution_id, "number", {"n": 5}, event_id="e5")  # duplicate
    context = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data["events_processed"] == 3,
    )
    assert context.status is Status.Running
    assert context.execution_data["events_received"] == 3
    assert context.node_states["small"]["counters"]["completed"] == 2
    assert context.node_states["big"]["counters"]["completed"] == 1
    assert context.node_states["big"]["counters"]["skipped"] == 2
    assert context.node_states["check"]["result"]["node"] == "check"
    await orchestrator.cancel_execution(execution_id)
    final = await orchestrator.wait_for_completion(execution_id, 30)
    assert final.status is Status.Cancelled
    events = [e async for e in orchestrator.events(execution_id)]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert sum(1 for e in events if e.type.value == "event_processed") == 3
    assert events[-1].type.value == "workflow_cancelled"


async def test_send_event_errors(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    from tests.helpers.builders import chain

    batch = chain(unique("batch"), 1)
    await orchestrator.register_workflow(batch)
    execution_id = await orchestrator.execute_workflow(batch.workflow_id)
    await orchestrator.wait_for_completion(execution_id, 30)
    with pytest.raises(PluginError) as info:
        await orchestrator.send_event(execution_id, "x", {})
    assert info.value.code is PluginErrorCode.InvalidState
    with pytest.raises(PluginError) as info:
        await orchestrator.send_event("no-such-execution", "x", {})
    assert info.value.code is PluginErrorCode.ExecutionNotFound
