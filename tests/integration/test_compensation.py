"""Compensation (sagas) on the real server: a failed or cancelled batch execution undoes its
completed nodes in reverse order, each compensation with its own retries; a compensation
that fails is reported without hiding the original error; a compensated execution is not
retried; registration checks compensations against the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from engine import (
    AdvancedPluginOrchestrator,
    NodeCompensation,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
)
from tests.helpers.builders import edge, node, workflow
from tests.helpers.plugins import read_count, read_jsonl
from tests.helpers.waiting import eventually

Status = WorkflowExecutionStatus
QUICK = {"max_attempts": 3, "initial_interval": 0.1, "maximum_interval": 0.2}


def _undone(**config: Any) -> NodeCompensation:
    return NodeCompensation(plugin_id="undo", configuration={"retry": QUICK, **config})


def _saga(workflow_id: str, last: Any, **undo: Any) -> PluginWorkflow:
    """reserve -> charge -> last, both first nodes compensated by ``undo``."""
    reserve = node("reserve", emit={"reservation": "r-1"})
    reserve.compensation = _undone()
    charge = node("charge", emit={"payment": "p-1"})
    charge.compensation = _undone(**undo)
    return workflow(
        workflow_id,
        [reserve, charge, last],
        [edge("reserve", "charge"), edge("charge", last.node_id)],
        mode=WorkflowExecutionMode.Sequential,
    )


async def _event_types(orchestrator: AdvancedPluginOrchestrator, execution_id: str) -> list[str]:
    return [
        f"{event.type.value}:{event.node_id or ''}"
        async for event in orchestrator.events(execution_id)
        if event.type.value.startswith(("compensation", "workflow", "node_failed"))
    ]


async def test_a_failure_undoes_the_completed_nodes_backwards(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    # charge's compensation fails its first attempt: it is retried by its own policy.
    definition = _saga(
        unique("saga"),
        node("ship", "fail", message="no truck", retry={"max_attempts": 1}),
        fail_attempts=1,
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id, {"order": 7})
    context = await orchestrator.wait_for_completion(execution_id, 60)
    assert context.status is Status.Failed
    assert context.error_messages[0].startswith("node 'ship' (plugin 'fail') failed")
    assert "no truck" in context.error_messages[0]
    calls = read_jsonl(tmp_path, "undo")
    assert [(c["node_id"], c["attempt"]) for c in calls] == [
        ("charge", 1),
        ("charge", 2),
        ("reserve", 1),
    ]
    reserve, charge = context.node_states["reserve"], context.node_states["charge"]
    assert calls[0]["output"] == charge["result"]
    assert calls[0]["input"] == {"reserve": reserve["result"]}
    assert calls[2]["input"] == {"order": 7}
    assert calls[0]["reason"] == "failed"
    assert calls[0]["error"] == context.error_messages[0]
    assert charge["compensation"]["status"] == "completed"
    assert charge["compensation"]["attempts"] == 2
    assert reserve["compensation"]["attempts"] == 1
    assert "compensation" not in context.node_states["ship"]
    assert context.execution_data["compensation"] == {
        "status": "completed",
        "reason": "failed",
        "nodes": ["charge", "reserve"],
        "failed": [],
    }
    assert await _event_types(orchestrator, execution_id) == [
        "workflow_started:",
        "node_failed:ship",
        "compensation_started:charge",
        "compensation_completed:charge",
        "compensation_started:reserve",
        "compensation_completed:reserve",
        "workflow_failed:",
    ]

    # Its completed nodes were undone: going on from them would be wrong.
    for attempt in (
        orchestrator.retry_execution(execution_id),
        orchestrator.skip_node(execution_id, "ship", {"shipped": True}),
    ):
        with pytest.raises(PluginError) as refused:
            await attempt
        assert refused.value.code is PluginErrorCode.InvalidState
        assert "ran the compensations of its completed nodes ('charge', 'reserve'" in (
            refused.value.message
        )


async def test_a_cancelled_execution_undoes_what_completed(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    slow = node("slow", "sleep", seconds=30, heartbeat_timeout=2)
    slow.compensation = _undone()
    definition = _saga(unique("cancelled-saga"), slow)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await eventually(lambda: _count(tmp_path, "slow.started"), lambda count: count == 1)
    await orchestrator.cancel_execution(execution_id)
    context = await orchestrator.wait_for_completion(execution_id, 60)
    assert context.status is Status.Cancelled
    assert context.node_states["slow"]["status"] == "cancelled"
    calls = read_jsonl(tmp_path, "undo")
    assert [c["node_id"] for c in calls] == ["charge", "reserve"]  # not slow: it never completed
    assert {c["reason"] for c in calls} == {"cancelled"}
    assert context.error_messages == ["execution was cancelled"]
    assert context.execution_data["compensation"]["reason"] == "cancelled"
    assert context.execution_data["compensation"]["status"] == "completed"
    assert (await _event_types(orchestrator, execution_id))[-5:] == [
        "compensation_started:charge",
        "compensation_completed:charge",
        "compensation_started:reserve",
        "compensation_completed:reserve",
        "workflow_cancelled:",
    ]
    with pytest.raises(PluginError) as refused:
        await orchestrator.retry_execution(execution_id)
    assert refused.value.code is PluginErrorCode.InvalidState


async def test_a_failing_compensation_keeps_the_original_error(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = _saga(
        unique("refund-fails"),
        node("ship", "fail", message="no truck", retry={"max_attempts": 1}),
        fail_attempts=-1,
        retry={"max_attempts": 2, "initial_interval": 0.1},
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 60)
    assert context.status is Status.Failed
    calls = read_jsonl(tmp_path, "undo")
    # charge's compensation failed twice (its own two attempts); reserve's still ran.
    assert [(c["node_id"], c["attempt"]) for c in calls] == [
        ("charge", 1),
        ("charge", 2),
        ("reserve", 1),
    ]
    assert "no truck" in context.error_messages[0]
    assert context.error_messages[1].startswith(
        "compensation of node 'charge' failed: plugin 'undo' failed after 2 attempts"
    )
    assert "could not undo charge" in context.error_messages[1]
    charge = context.node_states["charge"]["compensation"]
    assert charge["status"] == "failed"
    assert context.node_states["reserve"]["compensation"]["status"] == "completed"
    assert context.execution_data["compensation"]["status"] == "failed"
    assert context.execution_data["compensation"]["failed"] == ["charge"]
    assert "compensation_failed:charge" in await _event_types(orchestrator, execution_id)
    # Temporal's own record of the failure names the original error, then the compensation.
    with pytest.raises(WorkflowFailureError) as failure:
        await orchestrator.client.get_workflow_handle(execution_id).result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    message = cause.message
    assert message.startswith("node 'ship' (plugin 'fail') failed")
    assert message.endswith("compensation failed for node(s) 'charge'")


async def test_registration_checks_compensations_against_the_catalog(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    await eventually(
        orchestrator.get_plugin_catalog, lambda plugins: any(p.plugin_id == "undo" for p in plugins)
    )
    unknown = _saga(unique("unknown"), node("ship"))
    assert unknown.nodes[0].compensation is not None
    unknown.nodes[0].compensation.plugin_id = "refund"
    with pytest.raises(PluginError) as refused:
        await orchestrator.register_workflow(unknown)
    assert refused.value.code is PluginErrorCode.PluginNotFound
    assert "node 'reserve' compensation uses plugin 'refund'" in refused.value.message

    engine_node = _saga(unique("engine-node"), node("ship"))
    engine_node.nodes[1].compensation = NodeCompensation(plugin_id="wait")
    with pytest.raises(PluginError) as refused:
        await orchestrator.register_workflow(engine_node)
    assert refused.value.code is PluginErrorCode.InvalidWorkflowStructure
    assert "node 'charge' compensation: 'wait' is one of the engine's own nodes" in (
        refused.value.message
    )

    bad_retry = _saga(unique("bad-retry"), node("ship"), retry={"max_attempts": 1000})
    with pytest.raises(PluginError) as refused:
        await orchestrator.register_workflow(bad_retry)
    assert "node 'charge' compensation configuration: retry.max_attempts" in refused.value.message


async def _count(directory: Path, name: str) -> int:
    return read_count(directory, name)


async def test_a_cancel_during_compensations_does_not_interrupt_them(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = _saga(
        unique("cancel-while-undoing"),
        node("ship", "fail", retry={"max_attempts": 1}),
        seconds=2,
        heartbeat_timeout=5,
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await eventually(
        lambda: _calls(tmp_path), lambda calls: [c["node_id"] for c in calls] == ["charge"]
    )
    await orchestrator.cancel_execution(execution_id)
    context = await orchestrator.wait_for_completion(execution_id, 60)
    assert context.status is Status.Failed  # it was failing, and still ends failed
    calls = read_jsonl(tmp_path, "undo")
    assert [(c["node_id"], c["attempt"]) for c in calls] == [("charge", 1), ("reserve", 1)]
    assert context.node_states["charge"]["compensation"]["status"] == "completed"
    assert context.execution_data["compensation"]["status"] == "completed"
    assert context.execution_data["compensation"]["cancel_requested"] is True


async def _calls(directory: Path) -> list[dict[str, Any]]:
    return read_jsonl(directory, "undo")
