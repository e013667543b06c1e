"""EventDriven executions on the real server."""

from __future__ import annotations

import asyncio

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


async def test_send_event_from_the_cli(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, dev_server
) -> None:
    import sys

    definition = _router(unique("cli-events"))
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "engine.cli",
        "--address",
        dev_server.address,
        "--task-queue",
        orchestrator.task_queue,
        "send-event",
        execution_id,
        "number",
        "--payload",
        '{"n": 42}',
        "--event-id",
        "from-cli",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert "sent event from-cli" in stdout.decode()
    assert b"Fatal Python error" not in stderr
    status = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == 1,
    )
    assert status.node_states["big"]["counters"]["completed"] == 1
    await orchestrator.cancel_execution(execution_id)
    await orchestrator.wait_for_completion(execution_id, 30)


async def test_passes_wait_in_order_beyond_max_concurrent_events(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = _router(unique("bounded"), max_concurrent_events=2)
    definition.nodes[1] = node("check", "sleep", seconds=0.5)
    definition.connections[1] = edge("check", "big", condition="slept > 0.0")
    definition.connections[2] = edge("check", "small", condition="slept < 0.0")
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    for n in range(6):
        await orchestrator.send_event(execution_id, "tick", {"n": n}, event_id=f"t{n}")
    seen_running = 0
    while True:
        status = await orchestrator.get_execution_status(execution_id)
        seen_running = max(seen_running, status.execution_data.get("passes_running", 0))
        assert status.execution_data.get("passes_running", 0) <= 2
        if status.execution_data.get("events_processed") == 6:
            break
        await asyncio.sleep(0.1)
    assert seen_running == 2
    events = [e async for e in _until_cancelled(orchestrator, execution_id)]
    starts = [
        e.details["event_id"]
        for e in events
        if e.type.value == "node_started" and e.node_id == "check"
    ]
    assert starts == [f"t{n}" for n in range(6)]  # in arrival order


async def test_a_new_version_applies_from_the_next_event(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = _router(unique("evolving"))
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await orchestrator.send_event(execution_id, "number", {"n": 1}, event_id="before")
    await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == 1,
    )
    with pytest.raises(PluginError) as info:  # a cycle: rejected, the execution untouched
        await orchestrator.add_connection_to_workflow(
            definition.workflow_id, edge("small", "check")
        )
    assert info.value.code is PluginErrorCode.CircularDependency
    await orchestrator.add_node_to_workflow(definition.workflow_id, node("audit"))
    await orchestrator.add_connection_to_workflow(definition.workflow_id, edge("small", "audit"))
    await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data["workflow_version"] == 3,
    )
    await orchestrator.send_event(execution_id, "number", {"n": 2}, event_id="after")
    status = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == 2,
    )
    assert status.node_states["audit"]["counters"]["completed"] == 1
    assert status.node_states["small"]["counters"]["completed"] == 2
    await orchestrator.cancel_execution(execution_id)
    await orchestrator.wait_for_completion(execution_id, 30)


async def _until_cancelled(orchestrator: AdvancedPluginOrchestrator, execution_id: str):  # type: ignore[no-untyped-def]
    await orchestrator.cancel_execution(execution_id)
    async for event in orchestrator.events(execution_id):
        yield event


async def test_an_event_its_routes_cannot_read_fails_its_pass_and_the_run_goes_on(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    # A condition on the source's edge about a field the event lacks: the pass used to raise
    # inside the workflow task, which failed over and over, wedging the whole run; anyone who
    # can send an event (a webhook) could stop it so. Now that pass fails and says why.
    inbox = WorkflowNode(
        node_id="inbox",
        plugin_id="numbers",
        node_type=WorkflowNodeType.Source,
        configuration={"count": 0},
    )
    gate = WorkflowConnection(
        source_node="inbox",
        target_node="check",
        connection_type=ConnectionType.Control,
        properties={"condition": "amount > 10"},
    )
    definition = PluginWorkflow(
        workflow_id=unique("unroutable"),
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[inbox, node("check")],
        connections=[gate],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await orchestrator.send_event(execution_id, "order", {"n": 5}, event_id="no-amount")
    await orchestrator.send_event(execution_id, "order", {"amount": 50}, event_id="big")
    context = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data["events_processed"] == 1,
    )
    assert context.status is Status.Running
    assert context.execution_data["events_failed"] == 1
    assert context.node_states["check"]["counters"]["completed"] == 1
    events = [e async for e in _until_cancelled(orchestrator, execution_id)]
    failed = [e for e in events if e.type.value == "event_processed" and e.error]
    assert len(failed) == 1, [(e.type.value, e.error) for e in events]
    assert "unknown variable 'amount'" in (failed[0].error or "")
