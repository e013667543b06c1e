"""What an execution says about itself after it ended is what it said while it ran: an
EventDriven run's events keep each pass's result, and a retried or skipped batch execution
keeps its earlier node records and progress (the API, and the CLI in a subprocess)."""

from __future__ import annotations

import json
from typing import Any

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowEvent,
    WorkflowEventType,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from tests.helpers.builders import node
from tests.integration.test_cli import (  # noqa: F401 (fixtures by name)
    Cli,
    fixture_cli,
)

Status = WorkflowExecutionStatus


def _files_pipeline(workflow_id: str) -> PluginWorkflow:
    """inbox (a source that reads nothing itself) -> summarise, one pass per event."""
    inbox = WorkflowNode(
        node_id="inbox",
        plugin_id="numbers",
        node_type=WorkflowNodeType.Source,
        configuration={"count": 0},
    )
    return PluginWorkflow(
        workflow_id=workflow_id,
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[inbox, node("summarise")],
        connections=[
            WorkflowConnection(
                source_node="inbox", target_node="summarise", connection_type=ConnectionType.Event
            )
        ],
    )


def _completed_results(events: list[WorkflowEvent]) -> dict[int, Any]:
    """Sequence number -> result of every pass's node_completed event."""
    return {
        event.sequence: event.result
        for event in events
        if event.type is WorkflowEventType.node_completed and event.node_id == "summarise"
    }


async def test_an_ended_event_run_gives_each_pass_the_result_it_produced(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, cli: Cli
) -> None:
    definition = _files_pipeline(unique("passes"))
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    for name in ("f0", "f1", "f2"):
        await orchestrator.send_event(execution_id, "file", {"file": name}, event_id=name)

    live: list[WorkflowEvent] = []
    stream = orchestrator.events(execution_id)
    try:
        async for event in stream:
            live.append(event)
            if sum(e.type is WorkflowEventType.event_processed for e in live) == 3:
                break
    finally:
        await stream.aclose()
    live_results = _completed_results(live)
    files = [result["inputs"]["file"] for result in live_results.values()]
    assert sorted(files) == ["f0", "f1", "f2"]  # live, each pass has its own result

    await orchestrator.cancel_execution(execution_id)
    assert (await orchestrator.wait_for_completion(execution_id, 30)).status is Status.Cancelled
    ended = [event async for event in orchestrator.events(execution_id)]
    assert _completed_results(ended) == live_results
    assert [e.to_json() for e in ended[: len(live)]] == [e.to_json() for e in live]

    printed = cli("events", execution_id, "--json").stdout.splitlines()
    from_cli = [WorkflowEvent.model_validate(json.loads(line)) for line in printed]
    assert _completed_results(from_cli) == live_results
    assert from_cli[-1].type is WorkflowEventType.workflow_cancelled
