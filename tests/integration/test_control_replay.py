"""Control requests on a worker that caches no workflow (every workflow task replays the
history): the run must replay what it recorded.

A resume that follows a workflow task which sent no command (a node that completed while the
run was paused) was handled, on such a worker, in one activation with that node's result and
before it: the run saw the node still running and started what else was ready first; replays
apply the node's result first and started its successor first (TMPRL1100 ``Activity id of
scheduled event 'y' does not match activity id of activity command 'b'``), and the run was
stuck. A resume now takes effect in a workflow task of its own.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from tests.helpers.builders import edge, node, workflow
from tests.helpers.waiting import eventually


async def _failed_tasks(orchestrator: AdvancedPluginOrchestrator, execution_id: str) -> list[str]:
    handle = orchestrator.client.get_workflow_handle(execution_id)
    return [
        event.workflow_task_failed_event_attributes.failure.message
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_a_resume_after_a_node_ended_while_paused_replays(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    o = orchestrator
    # a -> b and x -> y, two at a time: b comes before y in the definition.
    definition = workflow(
        unique("resume-replay"),
        [node("a", "sleep", seconds=1.5), node("b"), node("x", "sleep", seconds=0.2), node("y")],
        [edge("a", "b"), edge("x", "y")],
        max_parallelism=2,
    )
    await o.register_workflow(definition)
    execution_id = await o.execute_workflow(definition.workflow_id)
    await eventually(
        lambda: o.get_execution_status(execution_id),
        lambda c: {c.node_states[n]["status"] for n in ("a", "x")} == {"running"},
    )
    await o.pause_execution(execution_id)
    # x ends (y is ready, nothing starts), then a ends in a workflow task that starts nothing.
    await eventually(
        lambda: o.get_execution_status(execution_id),
        lambda c: c.node_states["a"]["status"] == "completed",
    )
    await o.resume_execution(execution_id)
    final = await o.wait_for_completion(execution_id, 30)
    assert await _failed_tasks(o, execution_id) == []
    assert final.status is WorkflowExecutionStatus.Completed, final.error_messages
    assert {state["status"] for state in final.node_states.values()} == {"completed"}
