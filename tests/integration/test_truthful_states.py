"""What an execution says about itself after it ended is what it said while it ran: an
EventDriven run's events keep each pass's result, and a retried or skipped batch execution
keeps its earlier node records and progress (the API, and the CLI in a subprocess)."""

from __future__ import annotations

import json
from datetime import datetime
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
from tests.helpers.builders import edge, node, workflow
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


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _record(state: dict[str, Any]) -> tuple[Any, ...]:
    return (state["status"], state["attempts"], state["started_at"], state["completed_at"])


async def test_a_skipped_failed_execution_keeps_its_earlier_records_and_progress(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, cli: Cli
) -> None:
    definition = workflow(
        unique("skip-keeps"),
        [
            node("first"),
            node("broken", "fail", retry={"max_attempts": 2, "initial_interval": 0.1}),
        ],
        [edge("first", "broken")],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    failed = await orchestrator.wait_for_completion(execution_id, 30)
    assert failed.status is Status.Failed
    assert failed.node_states["broken"]["attempts"] == 2
    assert failed.progress == 1.0

    cli("skip", execution_id, "broken", "--output", '{"fixed": true}')
    context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is Status.Completed, context.error_messages
    shown = json.loads(cli("status", execution_id, "--json").stdout)
    assert shown["status"] == "completed"
    assert shown["progress"] == 1.0
    assert _at(shown["start_time"]) == failed.start_time  # the execution's first start
    assert _at(shown["end_time"]) > _at(shown["start_time"])
    first, broken = shown["node_states"]["first"], shown["node_states"]["broken"]
    assert _record(first) == _record(failed.node_states["first"])
    assert first["attempts"] == 1
    assert first["result"] == failed.node_states["first"]["result"]
    assert broken["status"] == "completed"
    assert broken["skipped_by_operator"] is True
    assert broken["result"] == {"fixed": True}
    assert broken["attempts"] == 2  # the earlier ones; skipping adds none
    assert broken["started_at"] == failed.node_states["broken"]["started_at"]
    assert failed.end_time is not None
    assert _at(broken["completed_at"]) >= failed.end_time

    printed = cli("events", execution_id, "--json").stdout.splitlines()
    events = [WorkflowEvent.model_validate(json.loads(line)) for line in printed]
    [given] = [e for e in events if e.type is WorkflowEventType.node_completed]
    assert (given.node_id, given.result) == ("broken", {"fixed": True})
    assert events[-1].type is WorkflowEventType.workflow_completed
    assert events[-1].progress == 1.0


async def test_a_retried_execution_adds_its_new_attempts_to_the_earlier_ones(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("retry-keeps"),
        [
            node("before", "count"),
            # Fails its first two calls: the run, then the first retry; the second retry works.
            node("fragile", "fail_times", times=2, retry={"max_attempts": 1}),
            node("after", "count"),
        ],
        [edge("before", "fragile"), edge("fragile", "after")],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    failed = await orchestrator.wait_for_completion(execution_id, 30)
    assert failed.status is Status.Failed
    assert failed.progress == 2 / 3  # before completed, fragile failed, after cancelled

    await orchestrator.retry_execution(execution_id)
    again = await orchestrator.wait_for_completion(execution_id, 30)
    assert again.status is Status.Failed
    assert again.node_states["fragile"]["attempts"] == 2
    assert again.start_time == failed.start_time

    await orchestrator.retry_execution(execution_id)
    context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is Status.Completed, context.error_messages
    assert context.progress == 1.0
    assert context.start_time == failed.start_time
    before, fragile, after = (context.node_states[n] for n in ("before", "fragile", "after"))
    assert _record(before) == _record(failed.node_states["before"])
    assert before["attempts"] == 1
    assert fragile["attempts"] == 3  # one in each run
    assert fragile["result"] == {"calls": 3}
    assert fragile["started_at"] == failed.node_states["fragile"]["started_at"]
    assert again.end_time is not None
    assert _at(fragile["completed_at"]) > again.end_time
    assert after["attempts"] == 1
    assert context.end_time is not None
    assert context.start_time is not None
    assert context.end_time > context.start_time
