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
