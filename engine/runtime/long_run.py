"""What EventDriven and Streaming executions share: state carried across continue-as-new,
a bounded event log, per-node counters, pause/resume, definition updates and the context.

Pure asyncio, nothing from Temporal (see :mod:`engine.runtime.event_run`,
:mod:`engine.runtime.stream_run`).
"""

from __future__ import annotations

import abc
import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from engine.language.models import (
    PluginWorkflow,
    WorkflowEvent,
    WorkflowEventType,
    WorkflowExecutionContext,
    WorkflowExecutionStatus,
)
from engine.runtime.contracts import LongRunState, NodeCounters
from engine.runtime.events import EventLog
from engine.runtime.lifecycle import Lifecycle
from engine.runtime.node_state import NodeState, node_state_dicts
from engine.runtime.scheduler import NodeStatus

Status = WorkflowExecutionStatus
EventType = WorkflowEventType

# Events a long-running execution keeps (and carries across continue-as-new); older ones
# are dropped from the log, sequence numbers keep counting.
MAX_KEPT_EVENTS = 500
# Results larger than this are not copied into events (the counters keep the last one).
MAX_EVENT_RESULT_BYTES = 8192


class LongRun(abc.ABC):
    """Base of the long-running controllers."""

    def __init__(
        self,
        workflow: PluginWorkflow,
        *,
        execution_id: str,
        state: LongRunState | None,
        clock: Callable[[], datetime],
        should_continue_as_new: Callable[[], bool],
    ) -> None:
        self.execution_id = execution_id
        self._clock = clock
        self._should_continue_as_new = should_continue_as_new
        self.state = state or LongRunState(workflow=workflow, start_time=clock().isoformat())
        self._fresh = state is None
        self._log = EventLog(
            self.state,
            execution_id=execution_id,
            workflow_id=lambda: self.workflow.workflow_id,
            clock=clock,
            keep=MAX_KEPT_EVENTS,
        )
        self._lifecycle = Lifecycle(
            execution_id,
            status=Status.Paused if self.state.paused else Status.Running,
            clock=clock,
            emit=self.emit,
        )
        self._wake = asyncio.Event()
        self._draining = False

    @property
    def workflow(self) -> PluginWorkflow:
        return self.state.workflow

    @abc.abstractmethod
    async def run(self) -> Status:
        """Run until the execution ends; raise :class:`ContinueAsNew` to continue as new."""

    def _is_paused(self) -> bool:
        return self._lifecycle.is_paused

    @property
    def status(self) -> Status:
        return self._lifecycle.status

    # -- control -------------------------------------------------------------------------

    def check_transition(self, action: str) -> None:
        """Raise ``PluginError(InvalidState)`` if ``action`` ("pause"/"resume") is invalid."""
        self._lifecycle.check_transition(action)

    def pause(self) -> None:
        self._lifecycle.pause()
        self.state.paused = True
        self._wake.set()

    def resume(self) -> None:
        self._lifecycle.resume()
        self.state.paused = False
        self._wake.set()

    def wake(self) -> None:
        """Look at the run's state again (e.g. whether its history asks to continue as new)."""
        self._wake.set()

    def adopt(self, workflow: PluginWorkflow) -> None:
        """Switch to a newer version of the definition at the next boundary."""
        if workflow.version <= self.state.workflow.version:
            return  # an old or repeated notification
        self.state.workflow = workflow
        self.emit(
            EventType.definition_updated,
            details={"workflow_version": workflow.version},
        )
        self._definition_changed()
        self._wake.set()

    @abc.abstractmethod
    def _definition_changed(self) -> None:
        """The definition changed: restart what depends on it at the next boundary."""

    # -- events and counters ------------------------------------------------------------

    def emit(self, event_type: WorkflowEventType, **fields: Any) -> None:
        result = fields.get("result")
        if result is not None and len(json.dumps(result, default=str)) > MAX_EVENT_RESULT_BYTES:
            fields["result"] = None
            fields["details"] = {**(fields.get("details") or {}), "result_omitted": True}
        self._log.append(event_type, **fields)

    def events(self, after: int = 0, limit: int = 1000) -> list[WorkflowEvent]:
        """Kept events with a sequence above ``after`` (older ones may have been dropped)."""
        return self._log.after(after, limit)

    @property
    def last_sequence(self) -> int:
        return self._log.last_sequence

    def counters(self, node_id: str) -> NodeCounters:
        counters = self.state.counters.get(node_id)
        if counters is None:
            counters = self.state.counters[node_id] = NodeCounters()
        return counters

    def now_iso(self) -> str:
        return self._clock().isoformat()

    # -- reporting -----------------------------------------------------------------------

    def node_states(self) -> dict[str, NodeState]:
        """Each node's state, as of now (what the context reports, typed)."""
        status_now = self._lifecycle.status
        ended = status_now.is_terminal
        states: dict[str, NodeState] = {}
        for node in self.workflow.nodes:
            counters = self.counters(node.node_id)
            if counters.running > 0:
                status = NodeStatus.running
            elif not ended or not _ever_started(counters):
                status = NodeStatus.skipped if ended and counters.skipped else NodeStatus.pending
            else:
                status = (
                    NodeStatus.cancelled if status_now is Status.Cancelled else NodeStatus.completed
                )
                if status_now is Status.Failed and counters.last_error:
                    status = NodeStatus.failed
            states[node.node_id] = NodeState(
                node_id=node.node_id,
                plugin_id=node.plugin_id,
                status=status,
                attempts=counters.runs,
                started_at=counters.last_started_at,
                completed_at=counters.last_completed_at,
                counters=counters.model_dump(exclude={"last_result"}),
                result=counters.last_result,
                error=counters.last_error,
            )
        return states

    def context(self, children: Mapping[str, str] | None = None) -> WorkflowExecutionContext:
        """The execution context as of now; ``children``: the child execution each node
        call started, by call key (:attr:`engine.runtime.interpreter.NodeCall.key`)."""
        states = self.node_states()
        running_nodes = [
            node_id for node_id, state in states.items() if state.status is NodeStatus.running
        ]
        lifecycle = self._lifecycle
        return WorkflowExecutionContext(
            execution_id=self.execution_id,
            workflow_id=self.workflow.workflow_id,
            status=lifecycle.status,
            start_time=datetime.fromisoformat(self.state.start_time),
            end_time=lifecycle.end_time,
            execution_data=self.execution_data(),
            node_states=node_state_dicts(states, children),
            progress=1.0 if lifecycle.status.is_terminal else 0.0,
            current_node=running_nodes[0] if running_nodes else "",
            error_messages=list(lifecycle.error_messages),
        )

    def execution_data(self) -> dict[str, Any]:
        return {
            "workflow_version": self.workflow.version,
            "execution_mode": self.workflow.execution_mode.value,
            "runs": self.state.runs,
        }

    def finish(self, status: Status, error: str | None = None) -> None:
        if error:
            self._lifecycle.error_messages.append(error)
        self._lifecycle.finish(status, progress=1.0, error=error)

    def carried_state(self) -> LongRunState:
        """The state for the next run (continue-as-new)."""
        return self.state.model_copy(update={"runs": self.state.runs + 1})


def _ever_started(counters: NodeCounters) -> bool:
    """True if the node ran at least once: a pass node counts runs, a source or stream node
    records when it started."""
    return counters.runs > 0 or counters.last_started_at is not None
