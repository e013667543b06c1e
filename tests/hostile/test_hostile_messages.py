"""Messages sent straight to Temporal, bypassing the client: anyone who can reach the namespace
can signal and update an execution or a registry entity with any payload. Each test sends
such messages with a plain Temporal client and checks that the execution keeps running, its
status stays readable, and nothing out of bounds or unchecked entered its state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
)
from engine.language.models import WorkflowEvent
from engine.runtime.bounds import MAX_EVENT_BYTES
from engine.runtime.contracts import (
    DEFINITION_CHANGED_SIGNAL,
    DEFINITION_WORKFLOW,
    EVENTS_SIGNAL,
    READ_DEFINITION_ACTIVITY,
    SOURCE_CHECKPOINT_SIGNAL,
    SUBMIT_EVENTS_UPDATE,
    SUBSCRIBE_SIGNAL,
    DefinitionNotice,
    DefinitionState,
    EventsPage,
    definition_entity_id,
)
from tests.helpers.builders import edge, node, workflow
from tests.helpers.histories import count_events
from tests.helpers.waiting import eventually
from tests.long_running.test_event_driven import _router

Status = WorkflowExecutionStatus
HUGE = "t" * 1_500_000  # the probe's 1.5 MB event type


async def _running_router(
    orchestrator: AdvancedPluginOrchestrator, workflow_id: str
) -> tuple[PluginWorkflow, str]:
    """A registered EventDriven router and a running execution of it that took one event."""
    definition = _router(workflow_id)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await orchestrator.send_event(execution_id, "number", {"n": 1}, event_id="first")
    await _processed(orchestrator, execution_id, 1)
    return definition, execution_id


async def _processed(
    orchestrator: AdvancedPluginOrchestrator, execution_id: str, count: int
) -> Any:
    return await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data.get("events_processed") == count,
    )


async def _events(handle: WorkflowHandle[Any, Any]) -> list[WorkflowEvent]:
    page: EventsPage = await handle.query("events", 0, result_type=EventsPage)
    return page.events


async def _registry_reads_done(handle: WorkflowHandle[Any, Any], count: int) -> None:
    """Wait until the execution has read its registered definition ``count`` times and no
    read is pending."""

    async def reads() -> tuple[int, int]:
        history = await handle.fetch_history()
        done = sum(
            event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and event.activity_task_scheduled_event_attributes.activity_type.name
            == READ_DEFINITION_ACTIVITY
            for event in history.events
        )
        pending = [
            activity
            for activity in (await handle.describe()).raw_description.pending_activities
            if activity.activity_type.name == READ_DEFINITION_ACTIVITY
        ]
        return done, len(pending)

    await eventually(reads, lambda r: r[0] >= count and r[1] == 0)


async def _refused_update(
    handle: WorkflowHandle[Any, Any], update: str, argument: Any, message: str
) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(update, argument)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.type == "InvalidInput", (cause.type, cause.message[:300])
    assert message in cause.message, cause.message[:300]


def _injected(definition: PluginWorkflow, version: int) -> PluginWorkflow:
    """The definition with an extra node fed by every pass: what an intruder would add."""
    changed = definition.model_copy(deep=True, update={"version": version})
    changed.nodes.append(node("exfil", url="http://attacker.invalid"))
    changed.connections.append(edge("check", "exfil"))
    return changed


# -- item 2: definitions ---------------------------------------------------------------------


async def test_a_definition_signal_is_only_a_notice(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    definition, execution_id = await _running_router(orchestrator, unique("notice"))
    handle = client.get_workflow_handle(execution_id)
    cyclic = _injected(definition, 100)
    cyclic.connections.append(edge("small", "check"))
    for payload in (_injected(definition, 99), cyclic, "not a definition", {"version": "x"}):
        await handle.signal(DEFINITION_CHANGED_SIGNAL, payload)
    # Each signal is a notice: the execution asks its registry, which still holds version 1.
    await _registry_reads_done(handle, 1)
    await orchestrator.send_event(execution_id, "number", {"n": 50}, event_id="second")
    status = await _processed(orchestrator, execution_id, 2)
    assert status.status is Status.Running
    assert status.execution_data["workflow_version"] == 1
    assert "exfil" not in status.node_states
    assert status.node_states["big"]["counters"]["completed"] == 1

    # A real change, through the registry, is adopted.
    await orchestrator.add_node_to_workflow(definition.workflow_id, node("audit"))
    await orchestrator.add_connection_to_workflow(definition.workflow_id, edge("small", "audit"))
    await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data["workflow_version"] == 3,
    )
    await orchestrator.send_event(execution_id, "number", {"n": 2}, event_id="third")
    status = await _processed(orchestrator, execution_id, 3)
    assert status.node_states["audit"]["counters"]["completed"] == 1
    assert "exfil" not in status.node_states
    await orchestrator.cancel_execution(execution_id)
    await orchestrator.wait_for_completion(execution_id, 30)


async def test_what_the_registry_holds_is_checked_before_it_is_adopted(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    """Someone with Temporal access plants registry entities (the definition was
    unregistered, so its id is free): only a valid later version of the same definition in
    the same mode is adopted."""
    definition, execution_id = await _running_router(orchestrator, unique("planted"))
    wid = definition.workflow_id
    entity_id = definition_entity_id(wid, orchestrator.task_queue)
    await orchestrator.unregister_workflow(wid)
    await client.get_workflow_handle(entity_id).result()
    execution = client.get_workflow_handle(execution_id)

    event_cycle = definition.model_copy(deep=True, update={"version": 2})
    event_cycle.connections.append(
        WorkflowConnection(
            source_node="check", target_node="inbox", connection_type=ConnectionType.Event
        )
    )
    other = _injected(definition, 3).model_copy(update={"workflow_id": unique("other")})
    sequential = workflow(wid, [node("a")], mode=WorkflowExecutionMode.Sequential)
    sequential.version = 4
    planted = [
        (event_cycle, "circular dependency"),
        (other, f"it is the definition of '{other.workflow_id}'"),
        (sequential, "a running EventDriven execution keeps its mode"),
    ]
    for reads, (candidate, reason) in enumerate(planted, start=1):
        entity = await client.start_workflow(
            DEFINITION_WORKFLOW,
            DefinitionState(workflow=candidate),
            id=entity_id,
            task_queue=orchestrator.task_queue,
        )
        await execution.signal(
            DEFINITION_CHANGED_SIGNAL, DefinitionNotice(workflow_id=wid, version=candidate.version)
        )
        await _registry_reads_done(execution, reads)
        refused = [e for e in await _events(execution) if e.type.value == "definition_refused"]
        assert len(refused) == reads, refused
        assert refused[-1].details["workflow_version"] == candidate.version
        assert reason in refused[-1].details["reason"], refused[-1].details
        await entity.terminate("next case")

    status = await orchestrator.get_execution_status(execution_id)
    assert status.status is Status.Running
    assert status.execution_data["workflow_version"] == 1
    assert "exfil" not in status.node_states

    valid = _injected(definition, 5)
    entity = await client.start_workflow(
        DEFINITION_WORKFLOW,
        DefinitionState(workflow=valid),
        id=entity_id,
        task_queue=orchestrator.task_queue,
    )
    await execution.signal(DEFINITION_CHANGED_SIGNAL, DefinitionNotice(workflow_id=wid, version=5))
    await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data["workflow_version"] == 5,
    )
    await orchestrator.cancel_execution(execution_id)
    await orchestrator.wait_for_completion(execution_id, 30)
    await entity.terminate("done")


async def test_subscriptions_from_anyone_are_bounded(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    definition = workflow(unique("subscribed"), [node("a")])
    await orchestrator.register_workflow(definition)
    wid = definition.workflow_id
    entity = client.get_workflow_handle(definition_entity_id(wid, orchestrator.task_queue))
    for execution_id in (
        "evil",
        "x" * 900,
        f"{wid}/run-{'a' * 200}",
        f"{wid}/run-0123456789abcdef",
    ):
        await entity.signal(SUBSCRIBE_SIGNAL, {"execution_id": execution_id, "version": 1})
    await orchestrator.add_node_to_workflow(wid, node("b"))
    history = await entity.fetch_history()
    # Only the subscription of the form of an execution of this definition was taken (and
    # notified: it does not exist, so it was dropped again).
    initiated = EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
    assert count_events(history, initiated) == 1
    assert (await orchestrator.get_workflow(wid)).version == 2


# -- item 3: updates and signals out of bounds ------------------------------------------------


async def test_oversized_updates_are_refused_and_write_nothing(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    _, execution_id = await _running_router(orchestrator, unique("updates"))
    handle = client.get_workflow_handle(execution_id)
    big_payload = {"blob": "x" * (MAX_EVENT_BYTES + 1)}
    for event, message in [
        ({"event_id": "e1", "event_type": HUGE}, "event_type is 1,500,000 characters"),
        ({"event_id": HUGE, "event_type": "number"}, "event_id is 1,500,000 characters"),
        ({"event_id": "e2", "source": "s" * 129}, "source is 129 characters; the limit is 128"),
        ({"event_id": "e3", "payload": big_payload}, "the limit is 262,144"),
    ]:
        await _refused_update(handle, SUBMIT_EVENTS_UPDATE, {"events": [event]}, message)

    approval = workflow(
        unique("approval"), [node("ask", "approval"), node("after")], [edge("ask", "after")]
    )
    await orchestrator.register_workflow(approval)
    waiting_id = await orchestrator.execute_workflow(approval.workflow_id)
    await eventually(
        lambda: orchestrator.get_execution_status(waiting_id),
        lambda c: c.execution_data.get("awaiting_approval") == ["ask"],
    )
    waiting = client.get_workflow_handle(waiting_id)
    decision = {"node_id": "ask", "approved": True}
    for change, message in [
        ({"comment": "c" * 1_000_000}, "comment is 1,000,000 characters; the limit is 4,096"),
        ({"by": "b" * 10_000}, "by is 10,000 characters; the limit is 256"),
        ({"node_id": HUGE}, "node_id is 1,500,000 characters"),
        ({"data": big_payload}, "the limit is 262,144"),
    ]:
        await _refused_update(waiting, "decide", {**decision, **change}, message)
    await _refused_update(
        waiting,
        "skip_node",
        {"node_id": "ask", "output": {"blob": "x" * 600_000}},
        "the limit is 500,000",
    )

    for refused_at in (handle, waiting):
        history = await refused_at.fetch_history()
        accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        assert count_events(history, accepted) == (1 if refused_at is handle else 0)
    status = await orchestrator.get_execution_status(execution_id)
    assert status.status is Status.Running
    assert status.execution_data["events_received"] == 1
    assert (await orchestrator.get_execution_status(waiting_id)).execution_data[
        "awaiting_approval"
    ] == ["ask"]
    await orchestrator.approve_node(waiting_id, "ask", by="ada", comment="fine")
    final = await orchestrator.wait_for_completion(waiting_id, 30)
    assert final.status is Status.Completed
    assert final.node_states["ask"]["result"]["comment"] == "fine"
    await orchestrator.cancel_execution(execution_id)
    await orchestrator.wait_for_completion(execution_id, 30)


async def test_oversized_signals_are_dropped_and_the_run_goes_on(
    orchestrator: AdvancedPluginOrchestrator,
    client: Client,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    _, execution_id = await _running_router(orchestrator, unique("signals"))
    handle = client.get_workflow_handle(execution_id)
    await handle.signal(EVENTS_SIGNAL, {"events": [{"event_id": "huge", "event_type": HUGE}]})
    await handle.signal(
        EVENTS_SIGNAL,
        {
            "events": [
                {"event_id": "fits", "event_type": "number", "payload": {"n": 3}},
                {"event_id": "i" * 5000, "event_type": "number", "payload": {"n": 4}},
                {"event_id": "fat", "payload": {"n": 5, "blob": "x" * (MAX_EVENT_BYTES + 1)}},
            ]
        },
    )
    for checkpoint in (
        {"node_id": "ghost", "checkpoint": 1},
        {"node_id": "n" * 100_000, "checkpoint": 1},
        {"node_id": "inbox", "checkpoint": "x" * 300_000},
    ):
        await handle.signal(SOURCE_CHECKPOINT_SIGNAL, checkpoint)
    await orchestrator.send_event(execution_id, "number", {"n": 2}, event_id="after")
    status = await _processed(orchestrator, execution_id, 3)  # first, fits, after
    assert status.status is Status.Running
    assert status.execution_data["events_received"] == 3
    checkpoints = status.execution_data["checkpoints"]
    assert set(checkpoints) <= {"inbox"}
    assert checkpoints.get("inbox") != "x" * 300_000
    refused = [e for e in await _events(handle) if e.type.value == "events_refused"]
    assert [e.details["count"] for e in refused] == [1, 2]
    assert "event_type is 1,500,000 characters" in refused[0].details["reason"]
    assert "event_id is 5,000 characters" in refused[1].details["reason"]
    assert all(len(e.model_dump_json()) < 4000 for e in await _events(handle))
    await orchestrator.cancel_execution(execution_id)
    await orchestrator.wait_for_completion(execution_id, 30)
