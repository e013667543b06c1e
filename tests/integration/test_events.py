"""The event stream (the spec's Qt signals), read live from a second client."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from engine import AdvancedPluginOrchestrator, WorkflowEvent, WorkflowEventType
from tests.helpers.builders import edge, node, workflow

T = WorkflowEventType


async def _second_orchestrator(client: Client, task_queue: str) -> AdvancedPluginOrchestrator:
    other = await Client.connect(
        client.service_client.config.target_host, namespace=client.namespace
    )
    return AdvancedPluginOrchestrator(other, task_queue=task_queue)


async def test_live_stream_from_another_client(
    orchestrator: AdvancedPluginOrchestrator, client: Client, worker: object, unique
) -> None:
    definition = workflow(
        unique("events"),
        [node("a", "sleep", seconds=0.5), node("b"), node("c")],
        [edge("a", "b", condition="slept > 1.0"), edge("a", "c")],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    watcher = await _second_orchestrator(client, orchestrator.task_queue)

    received: list[WorkflowEvent] = []

    async def watch() -> None:
        async for event in watcher.events(execution_id):
            received.append(event)
            if event.type is T.node_started and event.node_id == "a":
                await orchestrator.pause_execution(execution_id)
            if event.type is T.workflow_paused:
                await orchestrator.resume_execution(execution_id)

    await asyncio.wait_for(watch(), 60)
    types = [e.type for e in received]
    assert types[0] is T.workflow_started
    assert types[-1] is T.workflow_completed
    assert [e.sequence for e in received] == list(range(1, len(received) + 1))
    assert types.index(T.workflow_paused) < types.index(T.workflow_resumed)
    assert all(e.execution_id == execution_id for e in received)
    completed = {e.node_id: e.result for e in received if e.type is T.node_completed}
    assert completed["a"] == {"slept": 0.5}
    assert [e.node_id for e in received if e.type is T.node_skipped] == ["b"]
    progress = [e.progress for e in received if e.type is T.execution_progress_updated]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    assert received[-1].result == {"c": completed["c"]}  # skipped b has no result

    # The same stream, read again after the end (from stored state), and from the middle.
    again = [e async for e in watcher.events(execution_id)]
    assert [e.model_dump() for e in again] == [e.model_dump() for e in received]
    tail = [e async for e in watcher.events(execution_id, after=3)]
    assert [e.sequence for e in tail] == list(range(4, len(received) + 1))


async def test_failure_events(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(unique("fail-events"), [node("x", "fail", retry={"max_attempts": 1})])
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    events = [e async for e in orchestrator.events(execution_id)]
    failed = [e for e in events if e.type is T.node_failed]
    assert failed[0].node_id == "x"
    assert "ValueError: boom" in (failed[0].error or "")
    assert events[-1].type is T.workflow_failed
    assert events[-1].error == failed[0].error
