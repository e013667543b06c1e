"""What an EventDriven run carries across continue-as-new stays within Temporal's 2 MB payload:
events are admitted by bytes, and a run that cannot carry its state ends saying why instead of
failing every workflow task."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode
from engine import WorkflowExecutionStatus as Status
from engine.runtime.bounds import CARRY_LIMIT_BYTES
from engine.runtime.contracts import EXECUTION_WORKFLOW, ExecutionInput, IncomingEvent
from tests.helpers.waiting import eventually
from tests.long_running.test_event_driven import _router

EVENT_BYTES = 200_000


async def test_queued_events_never_outgrow_continue_as_new(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique: Callable[[str], str]
) -> None:
    o = orchestrator
    definition = _router(unique("carry"), events_per_run=100)
    await o.register_workflow(definition)
    execution_id = await o.execute_workflow(definition.workflow_id)
    await o.pause_execution(execution_id)  # events queue up: no pass starts
    accepted: list[str] = []
    refusal: PluginError | None = None
    for n in range(15):  # 3 MB of events, beyond what one payload can carry
        try:
            sent = await o.send_event(
                execution_id, "number", {"n": n, "blob": "x" * EVENT_BYTES}, timeout=3
            )
        except PluginError as exc:
            refusal = exc
            break
        accepted.append(sent)
    assert refusal is not None, f"{len(accepted)} events of {EVENT_BYTES:,} bytes were queued"
    assert refusal.code is PluginErrorCode.Timeout
    assert "queued events hold" in refusal.message, refusal.message
    assert 5 <= len(accepted) < CARRY_LIMIT_BYTES // EVENT_BYTES

    # Small events still fit; with them the run has taken events_per_run events and
    # continues as new, carrying its queue of almost 2 MB. Resumed, it takes every queued
    # event: none was lost, none stuck.
    small = [
        IncomingEvent(event_id=f"s{n}", event_type="number", payload={"n": n})
        for n in range(100 - len(accepted))
    ]
    await o.send_events(execution_id, small, timeout=10)
    accepted += [event.event_id for event in small]
    await eventually(
        lambda: o.get_execution_status(execution_id), lambda c: c.execution_data["runs"] >= 2
    )
    await o.resume_execution(execution_id)
    status = await eventually(
        lambda: o.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == len(accepted),
        timeout=60,
    )
    assert status.status is Status.Running
    assert status.execution_data["runs"] >= 2
    assert status.execution_data["events_received"] == len(accepted)
    await o.cancel_execution(execution_id)
    assert (await o.wait_for_completion(execution_id, 30)).status is Status.Cancelled


async def test_a_definition_too_large_to_carry_is_refused_at_start(
    short_orchestrator: AdvancedPluginOrchestrator, unique: Callable[[str], str]
) -> None:
    o = short_orchestrator
    definition = _router(unique("heavy"))
    definition.nodes[1].configuration = {"note": "x" * 1_000_000}
    await o.register_workflow(definition)
    with pytest.raises(PluginError) as info:
        await o.execute_workflow(definition.workflow_id)
    assert info.value.code is PluginErrorCode.InvalidWorkflowStructure
    assert "carries its definition twice" in info.value.message


async def test_a_run_that_cannot_carry_its_state_fails_saying_why(
    short_orchestrator: AdvancedPluginOrchestrator, unique: Callable[[str], str]
) -> None:
    """Started straight through Temporal, past the client's check: at its first
    continue-as-new the run fails with a message, it does not get stuck."""
    o = short_orchestrator
    definition = _router(unique("stuck"))
    definition.nodes[1].configuration = {"note": "x" * 1_100_000}  # carried twice: 2.2 MB
    definition.version = 1
    execution_id = f"{definition.workflow_id}/run-0123456789abcdef"
    await o.client.start_workflow(
        EXECUTION_WORKFLOW,
        ExecutionInput(workflow=definition),
        id=execution_id,
        task_queue=o.task_queue,
        memo={"execution_mode": "event_driven"},
    )
    with pytest.raises(PluginError) as info:  # no room for even one event
        await o.send_event(execution_id, "number", {"n": 1})
    assert info.value.code is PluginErrorCode.InvalidInput
    assert "this execution can queue at most 0 bytes" in info.value.message
    # Pause and resume until the history passes 40 events: the run then wants a new run.
    for _ in range(20):
        status = await o.get_execution_status(execution_id)
        if status.status is not Status.Running:
            break
        await o.pause_execution(execution_id)
        status = await o.get_execution_status(execution_id)
        if status.status is Status.Paused:
            await o.resume_execution(execution_id)
    final = await o.wait_for_completion(execution_id, 60)
    assert final.status is Status.Failed
    assert any(
        "the state this execution must carry to its next run is" in error
        for error in final.error_messages
    ), final.error_messages
