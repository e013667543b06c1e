"""A running execution's state read from its Temporal history, when no worker answers.

Status and events of a running execution come from queries, and Temporal hands a query to a
worker, which answers from the run's state. With every worker gone (crashed, scaled to zero,
not started yet) that is exactly when a user wants to look. The history holds everything the
state is made of, so the client replays it here, with the same workflow code and sandbox a
worker uses, and reads the state the run had after the last event in its history. Nothing
is written to Temporal.

The state is only as recent as the history: a node that was running when the last worker
went away shows as running (its attempt and last error come from Temporal's pending
activity, as for a live read). A context read this way says so in
``execution_data["observed"]``: ``{"source": "history", "as_of": <time of the last history
event>, "reason": ...}``.

Replaying costs the client about what a worker spends to pick the run up again (see the
README's benchmark of replay: about 0.6 ms per history event).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import WorkflowExecutionContext
from engine.runtime.contracts import EventsPage
from engine.temporal.sandbox import workflow_runner
from engine.temporal.workflow import PluginWorkflowExecution

OBSERVED_KEY = "observed"


@dataclass
class HistoryState:
    """What a run's history says about it, as of its last event."""

    context: WorkflowExecutionContext
    events: EventsPage
    as_of: datetime


async def replayed_state(
    handle: WorkflowHandle[Any, Any], reason: str, events_after: int = 0
) -> HistoryState:
    """Replay the latest run of ``handle``'s execution and read its status and events.

    Args:
        handle: The execution (no run id: the latest run is read).
        reason: Why the history is read instead of asking a worker (shown to the user).
        events_after: Read the events with a sequence number above this one.

    Raises:
        PluginError: ``ExecutionFailed`` if the history cannot be replayed by this code.
    """
    history = await handle.fetch_history()
    events = history.events
    if not events:
        raise PluginError(
            PluginErrorCode.ExecutionNotFound, f"execution '{handle.id}' has no history"
        )
    last_task = max(
        (event.event_id for event in events if event.event_type == _TASK_STARTED), default=0
    )
    capture = _Capture(last_task, events_after)
    replayer = Replayer(
        workflows=[PluginWorkflowExecution],
        interceptors=[capture],
        data_converter=handle._data_converter,  # the client's (decrypts when encryption is on)
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None or capture.state is None:
        failure = result.replay_failure or "the run's state was never reached"
        raise PluginError(
            PluginErrorCode.ExecutionFailed,
            f"execution '{handle.id}': no worker answered and its history could not be read "
            f"by this version of the engine: {failure}",
        )
    context, page = capture.state
    as_of = events[-1].event_time.ToDatetime().astimezone()
    context.execution_data[OBSERVED_KEY] = {
        "source": "history",
        "as_of": as_of.isoformat(),
        "reason": reason,
    }
    return HistoryState(context=context, events=page, as_of=as_of)


_TASK_STARTED = EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED


class _Capture(Interceptor):
    """Reads the replayed run's status and events once its last workflow task is replayed
    (from inside the workflow, where its clock and info are available)."""

    def __init__(self, last_task: int, events_after: int) -> None:
        self.last_task = last_task
        self.events_after = events_after
        self.state: tuple[WorkflowExecutionContext, EventsPage] | None = None

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        capture = self

        class Inbound(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                instance = workflow.instance()
                assert isinstance(instance, PluginWorkflowExecution)

                def observe() -> bool:
                    # A condition is checked after every step of every activation; only the
                    # last task's steps matter (earlier states are superseded).
                    if workflow.info().get_current_history_length() >= capture.last_task:
                        capture.state = (instance.status(), instance.events(capture.events_after))
                    return False

                # Waits on a condition only: no command, so the replay stays faithful.
                watcher = asyncio.get_running_loop().create_task(workflow.wait_condition(observe))
                try:
                    return await super().execute_workflow(input)
                finally:
                    watcher.cancel()

        return Inbound
