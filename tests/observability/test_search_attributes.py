"""Temporal UI: executions are searchable by definition id and status (search attributes),
name their nodes in activity summaries and carry the definition version in their memo."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory

import engine.hosting.devserver
from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode, WorkflowExecutionMode
from engine import WorkflowExecutionStatus as Status
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import create_worker
from engine.temporal import telemetry
from engine.temporal.telemetry import STATUS_ATTRIBUTE, WORKFLOW_ID_ATTRIBUTE
from plugins import PluginRegistry
from tests.helpers.builders import chain, edge, node, workflow
from tests.helpers.histories import scheduled_activities
from tests.helpers.waiting import eventually
from tests.replay.replay_all import replayer


@pytest.fixture(autouse=True)
def _fresh_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test asks the server again (the answer is cached per address and namespace)."""
    monkeypatch.setattr(telemetry, "_available", {})
    monkeypatch.delenv("ORCHESTRATOR_SEARCH_ATTRIBUTES", raising=False)


async def listed(client: Client, query: str) -> list[str]:
    return [execution.id async for execution in client.list_workflows(query)]


async def wait_listed(client: Client, workflow_id: str, status: str, execution_id: str) -> None:
    query = f"OrchestratorWorkflowId = '{workflow_id}' AND OrchestratorStatus = '{status}'"
    await eventually(lambda: listed(client, query), lambda ids: ids == [execution_id], timeout=20)


async def test_executions_are_searchable_by_definition_and_status(
    client: Client,
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    assert await telemetry.search_attributes_enabled(client)  # the dev server registers them
    done = chain(unique("searchable"), 2)
    failing = workflow(unique("failing"), [node("broken", "fail", retry={"max_attempts": 1})])
    paused = workflow(
        unique("paused"),
        [node("slow", "sleep", seconds=1.0), node("after", "echo")],
        [edge("slow", "after")],
        mode=WorkflowExecutionMode.Sequential,
    )
    cancelled = workflow(unique("cancelled"), [node("long", "sleep", seconds=60.0)])
    for definition in (done, failing, paused, cancelled):
        await orchestrator.register_workflow(definition)
    done_id = await orchestrator.execute_workflow(done.workflow_id)
    failing_id = await orchestrator.execute_workflow(failing.workflow_id)
    paused_id = await orchestrator.execute_workflow(paused.workflow_id)
    cancelled_id = await orchestrator.execute_workflow(cancelled.workflow_id)

    # Set at start by the start request, before any workflow task.
    description = await client.get_workflow_handle(done_id).describe()
    assert description.typed_search_attributes.get(WORKFLOW_ID_ATTRIBUTE) == done.workflow_id
    assert description.typed_search_attributes.get(STATUS_ATTRIBUTE) in ("running", "completed")

    await orchestrator.pause_execution(paused_id)
    await wait_listed(client, paused.workflow_id, "paused", paused_id)
    # The running node finishes; the workflow task that records it starts nothing new.
    await eventually(
        lambda: orchestrator.get_node_status(paused_id, "slow"),
        lambda state: state["status"] == "completed",
    )
    assert await scheduled_activities(client, paused_id) == ["slow"]
    assert (await orchestrator.get_execution_status(paused_id)).status is Status.Paused
    await orchestrator.resume_execution(paused_id)
    await wait_listed(client, cancelled.workflow_id, "running", cancelled_id)
    await orchestrator.cancel_execution(cancelled_id)

    for execution_id in (done_id, failing_id, paused_id, cancelled_id):
        await orchestrator.wait_for_completion(execution_id, timeout=60)
    await wait_listed(client, done.workflow_id, "completed", done_id)
    await wait_listed(client, failing.workflow_id, "failed", failing_id)
    await wait_listed(client, paused.workflow_id, "completed", paused_id)
    await wait_listed(client, cancelled.workflow_id, "cancelled", cancelled_id)
    both = (
        f"OrchestratorWorkflowId IN ('{done.workflow_id}', '{failing.workflow_id}') "
        "AND OrchestratorStatus = 'failed'"
    )
    assert await listed(client, both) == [failing_id]

    # The memo has the definition version; activity summaries name the nodes.
    handle = client.get_workflow_handle(paused_id)
    memo = await (await handle.describe()).memo()
    assert memo["workflow_id"] == paused.workflow_id
    assert memo["workflow_version"] == 1
    history = await handle.fetch_history()
    summaries = [
        json.loads(event.user_metadata.summary.data)
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert summaries == ["slow slow: sleep", "after after: echo"]
    # The status upserts come with the patch's marker (and its TemporalChangeVersion upsert)
    # and replay deterministically.
    upserted = [
        {
            name: json.loads(payload.data)
            for name, payload in fields.search_attributes.indexed_fields.items()
        }
        for fields in (
            event.upsert_workflow_search_attributes_event_attributes
            for event in history.events
            if event.HasField("upsert_workflow_search_attributes_event_attributes")
        )
    ]
    statuses = [
        fields["OrchestratorStatus"] for fields in upserted if "OrchestratorStatus" in fields
    ]
    assert statuses == ["paused", "running", "completed"]
    assert {"TemporalChangeVersion": ["search-attributes"]} in upserted
    # The resume brings a patch marker of its own (it takes effect in a workflow task of its
    # own: engine.temporal.workflow.CONTROL_OWN_TASK_PATCH); the end stores the compact outcome.
    assert {"TemporalChangeVersion": ["control-in-own-task", "search-attributes"]} in upserted
    assert sorted(_patches(history)) == [
        "compact-outcome",
        "control-in-own-task",
        "search-attributes",
    ]
    await replayer().replay_workflow(history)


async def test_search_attributes_off(
    monkeypatch: pytest.MonkeyPatch,
    client: Client,
    orchestrator: AdvancedPluginOrchestrator,
    worker: object,
    unique: Callable[[str], str],
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SEARCH_ATTRIBUTES", "off")
    definition = chain(unique("unsearchable"), 1)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, timeout=30)
    assert context.status is Status.Completed
    handle = client.get_workflow_handle(execution_id)
    description = await handle.describe()
    assert description.typed_search_attributes.get(WORKFLOW_ID_ATTRIBUTE) is None
    assert description.typed_search_attributes.get(STATUS_ATTRIBUTE) is None
    history = await handle.fetch_history()
    assert "search-attributes" not in _patches(history)


def _patches(history: WorkflowHistory) -> list[str]:
    """The ids of the patch markers the history records."""
    return [
        json.loads(event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)[
            "id"
        ]
        for event in history.events
        if event.HasField("marker_recorded_event_attributes")
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
    ]


@pytest.mark.slow
async def test_a_server_without_the_attributes(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    registry: PluginRegistry,
    task_queue: str,
    unique: Callable[[str], str],
) -> None:
    """Like a cluster where nobody registered them: ``auto`` runs without them, ``on``
    refuses to start (the server rejects unknown search attributes). Restarted by
    ``DevServer``, the same database file gets them."""
    monkeypatch.setattr(engine.hosting.devserver, "SEARCH_ATTRIBUTES", ())
    server = DevServer(tmp_path / "bare", port=free_port(), ui_port=0).start()
    try:
        client = await connect(server.address)
        assert not await telemetry.search_attributes_enabled(client)
        orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
        definition = chain(unique("plain"), 1)
        async with create_worker(client, task_queue=task_queue, plugins=registry):
            await orchestrator.register_workflow(definition)
            execution_id = await orchestrator.execute_workflow(definition.workflow_id)
            context = await orchestrator.wait_for_completion(execution_id, timeout=30)
            assert context.status is Status.Completed

            monkeypatch.setenv("ORCHESTRATOR_SEARCH_ATTRIBUTES", "on")
            with pytest.raises(PluginError) as raised:
                await orchestrator.execute_workflow(definition.workflow_id)
            assert raised.value.code is PluginErrorCode.InvalidConfiguration
            assert "OrchestratorWorkflowId, OrchestratorStatus" in raised.value.message
    finally:
        server.stop()

    monkeypatch.setattr(
        engine.hosting.devserver, "SEARCH_ATTRIBUTES", telemetry.SEARCH_ATTRIBUTE_DEFINITIONS
    )
    monkeypatch.setenv("ORCHESTRATOR_SEARCH_ATTRIBUTES", "auto")
    server.start()
    try:
        monkeypatch.setattr(telemetry, "_available", {})
        assert await telemetry.search_attributes_enabled(await connect(server.address))
    finally:
        server.stop()
