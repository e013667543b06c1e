"""An EventDriven execution resumed with passes queued, on a worker that caches no workflow
(every workflow task replays the history): the run must replay what it recorded.

The source stopped by the pause ends in a workflow task of its own that sends no command;
on a cold worker the SDK applied that task's activity result in the same activation as the
resume, after the resume's handler, so the loop saw the old source still stopping, started
the queued passes and the source only after it. Replays apply them one task at a time and
started the source first: ``TMPRL1100 Activity id of scheduled event 'summarise#3' does not
match activity id of activity command 'watch@source-2'``, and the run was stuck.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio.api.enums.v1 import EventType

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionContext,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from tests.helpers.builders import node
from tests.helpers.waiting import eventually


def _watched(workflow_id: str) -> PluginWorkflow:
    """watch (a source that emits nothing within the test) -> summarise."""
    watch = WorkflowNode(
        node_id="watch",
        plugin_id="numbers",
        node_type=WorkflowNodeType.Source,
        configuration={"delay": 3600, "heartbeat_timeout": 2},
    )
    return PluginWorkflow(
        workflow_id=workflow_id,
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[watch, node("summarise")],
        connections=[
            WorkflowConnection(
                source_node="watch", target_node="summarise", connection_type=ConnectionType.Event
            )
        ],
    )


async def _failed_tasks(orchestrator: AdvancedPluginOrchestrator, execution_id: str) -> list[str]:
    handle = orchestrator.client.get_workflow_handle(execution_id)
    return [
        event.workflow_task_failed_event_attributes.failure.message
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_a_resume_with_queued_passes_replays_on_a_worker_without_cache(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    o = orchestrator
    definition = _watched(unique("resume-replay"))
    await o.register_workflow(definition)
    execution_id = await o.execute_workflow(definition.workflow_id)

    def watching(running: int) -> Callable[[WorkflowExecutionContext], bool]:
        return lambda c: c.node_states["watch"]["counters"]["running"] == running

    def processed(count: int) -> Callable[[WorkflowExecutionContext], bool]:
        return lambda c: c.execution_data["events_processed"] == count

    sent = 0
    for _ in range(3):
        await eventually(lambda: o.get_execution_status(execution_id), watching(1))
        await o.pause_execution(execution_id)
        for _ in range(2):  # they wait: no pass starts while paused
            await o.send_event(execution_id, "file", {"n": sent}, source="watch")
            sent += 1
        # The source has stopped (its workflow task sent no command): resume now.
        await eventually(lambda: o.get_execution_status(execution_id), watching(0))
        await o.resume_execution(execution_id)
        status = await eventually(lambda: o.get_execution_status(execution_id), processed(sent))
        assert status.status is WorkflowExecutionStatus.Running
        assert await _failed_tasks(o, execution_id) == []
    await o.cancel_execution(execution_id)
    final = await o.wait_for_completion(execution_id, 30)
    assert final.status is WorkflowExecutionStatus.Cancelled
    assert final.node_states["summarise"]["counters"]["completed"] == sent
    assert await _failed_tasks(o, execution_id) == []
