"""Reading an execution's Temporal histories in tests."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory


async def run_histories(client: Client, execution_id: str) -> list[WorkflowHistory]:
    """Every Temporal run of the execution (its continue-as-new chain), oldest first."""
    runs = [run async for run in client.list_workflows(f'WorkflowId = "{execution_id}"')]
    runs.sort(key=lambda run: run.start_time)
    return [
        await client.get_workflow_handle(execution_id, run_id=run.run_id).fetch_history()
        for run in runs
    ]


def count_events(history: WorkflowHistory, event_type: EventType.ValueType) -> int:
    """How many events of ``event_type`` the history holds."""
    return sum(event.event_type == event_type for event in history.events)


async def scheduled_activities(client: Client, execution_id: str) -> list[str]:
    """Activity ids the execution's latest run has scheduled, in order. Read right after a
    query showed a node's completion, it holds everything the workflow task that processed
    the completion decided to start (a query is not answered while a workflow task is in
    flight, and a task's commands are recorded with its completion)."""
    history = await client.get_workflow_handle(execution_id).fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
