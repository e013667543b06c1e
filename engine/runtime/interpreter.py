"""The batch interpreter: drives a :class:`Scheduler` and calls nodes through a runner.

Pure asyncio, nothing from Temporal: the workflow injects a :class:`NodeRunner` that executes
activities and a clock that reads ``workflow.now()``; unit tests inject in-memory fakes (the
httpx ``MockTransport`` idea). Everything it does is deterministic: tasks are created in
scheduler order, and all collections are lists or insertion-ordered dicts.

Lifecycle of a run:

* ``run()`` starts ready nodes (one at a time in Sequential mode, up to ``max_parallelism``
  otherwise) until every node is finished.
* ``pause()``: no new node starts; running nodes finish and are recorded. ``resume()``
  continues. A paused run whose nodes are all finished completes.
* A node failure fails the run: nothing new starts, running nodes are cancelled, the run ends
  ``Failed`` with the error in ``error_messages``.
* Cancelling the task that runs ``run()`` (Temporal does this on a cancellation request)
  cancels running nodes, waits for them, and ends the run ``Cancelled``.
* A run that fails or is cancelled first runs the compensations of its completed nodes,
  in reverse order of completion and shielded from cancellation, then ends
  (:mod:`engine.runtime.compensation`).
* A retry of a failed or cancelled run (:meth:`Interpreter.continue_from`) goes on from its
  earlier node records: the nodes completed before keep their attempts and times, a node
  run again adds its new attempts to its earlier ones and keeps its first start, a node an
  operator skipped completes with its earlier attempts, and the run keeps its first start
  time and starts at the progress of the nodes already finished.
* When ``should_continue_as_new()`` says so (the history grows long), no new node starts;
  once running nodes have finished, ``run()`` raises :class:`ContinueAsNew` with the run's state,
  and the workflow continues as new with it (``carried``): same node records, outputs,
  events and sequence numbers, as if the run had never stopped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.graph import Graph
from engine.language.maps import map_plan
from engine.language.models import (
    PluginWorkflow,
    WorkflowEvent,
    WorkflowEventType,
    WorkflowExecutionContext,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
)
from engine.language.options import NodeOptions, global_options, node_options, plugin_config
from engine.runtime.compensation import SUMMARY_KEY, Saga, shielded
from engine.runtime.contracts import MAX_PAYLOAD_BYTES, BatchRunState, EarlierRecords
from engine.runtime.events import EventLog, with_results
from engine.runtime.lifecycle import ContinueAsNew, Lifecycle
from engine.runtime.node_call import EventSink, NodeCall, NodeFailure, NodeRunner, NodeSuccess
from engine.runtime.node_state import NodeState, node_state_dicts
from engine.runtime.scheduler import NodeStatus, RoutingError, Scheduler

__all__ = [  # the node call's types were first defined here, and are imported from here
    "CARRIED_EVENTS",
    "CARRIED_OUTPUT_BYTES",
    "EventSink",
    "Interpreter",
    "NodeCall",
    "NodeFailure",
    "NodeRunner",
    "NodeSuccess",
]

Status = WorkflowExecutionStatus
EventType = WorkflowEventType
# Events carried across continue-as-new (older ones are dropped from the log, sequence
# numbers keep counting): followers read events as they happen, and the next run's start
# event must stay small, or Temporal would suggest continuing as new again at once.
CARRIED_EVENTS = 200
# Outputs carried across continue-as-new in full up to this size; past it only the outputs an
# unfinished node still reads (and the results) travel: a run's start event stays small next
# to the history size at which Temporal suggests continuing as new (4 MB by default).
CARRIED_OUTPUT_BYTES = 256_000


@dataclass(slots=True)
class _NodeRecord:
    status: NodeStatus = NodeStatus.pending
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    skipped_by_operator: bool = False

    def state(self, node_id: str, plugin_id: str) -> NodeState:
        return NodeState(
            node_id=node_id,
            plugin_id=plugin_id,
            status=self.status,
            attempts=self.attempts,
            started_at=self.started_at.isoformat() if self.started_at else None,
            completed_at=self.completed_at.isoformat() if self.completed_at else None,
            result=self.result,
            error=self.error,
            skipped_by_operator=self.skipped_by_operator,
        )


@dataclass(slots=True)
class _RunState:
    start_time: datetime | None = None
    progress: float = 0.0
    events: list[WorkflowEvent] = field(default_factory=list)  # the event log's
    next_sequence: int = 1


class Interpreter:
    """Runs one batch execution (Sequential, Parallel or Conditional) of a compiled graph."""

    def __init__(
        self,
        graph: Graph,
        *,
        execution_id: str,
        input_data: dict[str, Any],
        runner: NodeRunner,
        clock: Callable[[], datetime],
        completed: dict[str, dict[str, Any]] | None = None,
        pass_id: int = 0,
        item_key: str = "",
        emit: EventSink | None = None,
        carried: BatchRunState | None = None,
        should_continue_as_new: Callable[[], bool] | None = None,
        meter_conditions: Callable[[], bool] | None = None,
        may_compensate: Callable[[], bool] | None = None,
        map_entry_taken: Callable[[], bool] | None = None,
    ) -> None:
        """Args:
        graph: The compiled definition (batch mode).
        execution_id: Id of the execution, for events and node calls.
        input_data: The inputs of nodes without incoming DataFlow connections.
        runner: Executes node calls.
        clock: Current time (``workflow.now`` in a workflow).
        completed: Nodes completed from the start, with their outputs.
        pass_id: Non-zero for one EventDriven pass: node calls carry it, and no workflow-level
            events are emitted.
        emit: Receives events instead of the interpreter's own log (a pass reports to its
            execution's log).
        carried: The state a previous Temporal run of this execution stopped with.
        should_continue_as_new: Asked between steps; True makes the run drain and raise
            :class:`ContinueAsNew`.
        meter_conditions: Asked when a connection's condition is evaluated: whether to
            meter it (the workflow answers with a patch, so runs from before the meter
            replay as they ran); default yes.
        may_compensate: Asked once, when a failed or cancelled run has compensations to
            run (:mod:`engine.runtime.compensation`): whether to run them (the workflow
            answers with a patch); default yes.
        map_entry_taken: Asked when a finished map's entry edges fail on the splitter's
            summary (:meth:`Scheduler.complete_map`): whether they resolve as taken instead
            of failing the map (the workflow answers with a patch); default yes.
        """
        workflow = graph.workflow
        if workflow.execution_mode.is_long_running:
            raise PluginError(
                PluginErrorCode.ExecutionModeNotSupported,
                f"workflow '{workflow.workflow_id}': {workflow.execution_mode.name} mode is not "
                "run by the batch interpreter",
            )
        self.graph = graph
        self.workflow: PluginWorkflow = workflow
        self.execution_id = execution_id
        self.input_data = input_data
        self._runner = runner
        self._clock = clock
        self._nodes = {node_id: _NodeRecord() for node_id in graph.nodes}
        unroutable: str | None = None
        if carried is None:
            try:
                self._scheduler = Scheduler(graph, completed)
            except RoutingError as exc:
                # What a pass's event or a map's item gives the graph cannot be routed (a
                # condition about a field it lacks): this run fails before any node starts,
                # saying why, instead of failing the workflow task over and over.
                self._scheduler = Scheduler(graph)
                unroutable = str(exc)
            for node_id, output in (completed or {}).items():
                self._nodes[node_id] = _NodeRecord(status=NodeStatus.completed, result=output)
        self._pass_id = pass_id
        self._item_key = item_key
        self._quiet = bool(pass_id or item_key)  # a pass or a map item: no run-level events
        self._sink = emit
        self._state = _RunState()
        self._log = EventLog(
            self._state,
            execution_id=execution_id,
            workflow_id=lambda: workflow.workflow_id,
            clock=clock,
        )
        self._lifecycle = Lifecycle(
            execution_id, status=Status.Pending, clock=clock, emit=self._emit
        )
        # Why the nodes given as completed could not be routed, if they could not.
        self.unroutable = unroutable
        if unroutable is not None:
            self._lifecycle.error_messages.append(unroutable)
        self._paused = False
        self._carried = carried
        self._should_continue_as_new = should_continue_as_new
        self._meter_conditions = meter_conditions
        self._may_compensate = may_compensate
        self._map_entry_taken = map_entry_taken
        self._saga = Saga(workflow, execution_id=execution_id, clock=clock, emit=self._emit)
        self._draining = False
        self._launched = 0  # nodes this Temporal run has started
        self._dropped_results: list[str] = []
        self._first_start: datetime | None = None  # a retry: when the execution first started
        self._given: list[str] = []  # a retry: nodes an operator completed with an output
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._failure: str | None = unroutable
        self._internal_error: BaseException | None = None
        self._wake = asyncio.Event()
        self._node_options: dict[str, NodeOptions] = {}
        self._overrides: dict[str, dict[str, Any]] = {}  # node -> output given by an operator
        sequential = workflow.execution_mode is WorkflowExecutionMode.Sequential
        self._limit = (
            1 if sequential else global_options(workflow.global_configuration).max_parallelism
        )
        if carried is not None:
            self._restore(carried)
        if meter_conditions is not None:
            self._scheduler.meter_conditions = meter_conditions

    def _restore(self, carried: BatchRunState) -> None:
        self._scheduler = Scheduler.restore(
            self.graph,
            {node_id: NodeStatus(value) for node_id, value in carried.status.items()},
            carried.outputs,
            carried.errors,
            carried.taken,
        )
        for node_id, data in carried.nodes.items():
            self._nodes[node_id] = _NodeRecord(
                status=NodeStatus(data["status"]),
                attempts=data.get("attempts", 0),
                started_at=_time(data.get("started_at")),
                completed_at=_time(data.get("completed_at")),
                result=data.get("result", carried.outputs.get(node_id)),
                error=data.get("error"),
                skipped_by_operator=data.get("skipped_by_operator", False),
            )
        self._overrides = dict(carried.overrides)
        self._dropped_results = list(carried.dropped_results)
        self._state.start_time = datetime.fromisoformat(carried.start_time)
        self._state.progress = carried.progress
        self._lifecycle.error_messages = list(carried.error_messages)
        self._state.events = list(carried.events)
        self._state.next_sequence = carried.next_sequence
        self._paused = carried.paused
        self._saga.restore(carried.compensable)

    def continue_from(self, earlier: EarlierRecords) -> None:
        """Take over the node records of the runs this retry follows (call before
        :meth:`run`; nodes given as ``completed`` are the ones that completed before, or
        that an operator skipped).

        Completed nodes keep their attempts and times; a node an operator skipped completes
        now with its earlier attempts; a node that runs again starts from its earlier
        attempts and first start (its new attempts add to them). The run keeps the first
        start time and starts at the progress of the nodes already finished.
        """
        if self._carried is not None:
            return  # a continued run carries all of it already
        now = self._clock()
        self._given = [node_id for node_id in earlier.skipped if node_id in self._nodes]
        for node_id, data in earlier.nodes.items():
            record = self._nodes.get(node_id)
            if record is None:
                continue
            record.attempts = int(data.get("attempts") or 0)
            record.started_at = _time(data.get("started_at"))
            if record.status is NodeStatus.completed:  # else it runs again
                record.completed_at = _time(data.get("completed_at"))
                record.skipped_by_operator = data.get("skipped_by_operator") is True
        for node_id in self._given:
            self._nodes[node_id].skipped_by_operator = True
            self._nodes[node_id].completed_at = now
        if earlier.start_time:
            self._first_start = datetime.fromisoformat(earlier.start_time)
            self._state.start_time = self._first_start
        self._state.progress = self._scheduler.progress()

    # -- control -------------------------------------------------------------------------

    @property
    def status(self) -> Status:
        return self._lifecycle.status

    def pause(self) -> None:
        """Stop starting nodes. Raises ``PluginError(InvalidState)`` unless running."""
        self._refuse_while_compensating("pause")
        self._lifecycle.pause()
        self._paused = True

    def resume(self) -> None:
        """Start nodes again. Raises ``PluginError(InvalidState)`` unless paused."""
        self._refuse_while_compensating("resume")
        self._lifecycle.resume()
        self._paused = False
        self._wake.set()

    def node_status(self, node_id: str) -> str | None:
        record = self._nodes.get(node_id)
        return record.status.value if record is not None else None

    def skip_node(self, node_id: str, output: dict[str, Any]) -> None:
        """Complete a node that has not finished with ``output`` instead of running it (a
        running node is cancelled and completes with it).

        Raises:
            PluginError: ``NodeNotFound``; ``InvalidState`` if the node has finished or the
                run is not running or paused.
        """
        self.check_skip(node_id)
        self._overrides[node_id] = output
        task = self._tasks.get(node_id)
        if task is not None:
            task.cancel()
        self._wake.set()

    def check_skip(self, node_id: str) -> None:
        """Raise the reason ``node_id`` cannot be skipped now, if any (changes nothing)."""
        record = self._nodes.get(node_id)
        if record is None:
            raise PluginError(
                PluginErrorCode.NodeNotFound,
                f"execution '{self.execution_id}' has no node '{node_id}'",
            )
        self._refuse_while_compensating(f"skip node '{node_id}' of")
        status = self._lifecycle.status
        if status not in (Status.Running, Status.Paused) or record.status not in (
            NodeStatus.pending,
            NodeStatus.running,
        ):
            raise PluginError(
                PluginErrorCode.InvalidState,
                f"cannot skip node '{node_id}' of execution '{self.execution_id}': the node is "
                f"{record.status.value} and the execution {status.value}",
            )

    def check_transition(self, action: str) -> None:
        """Raise ``PluginError(InvalidState)`` if ``action`` ("pause"/"resume") is invalid now."""
        self._refuse_while_compensating(action)
        self._lifecycle.check_transition(action)

    def _refuse_while_compensating(self, action: str) -> None:
        if self._saga.started and self._lifecycle.status in (Status.Running, Status.Paused):
            raise PluginError(
                PluginErrorCode.InvalidState,
                f"cannot {action} execution '{self.execution_id}': it is running the "
                "compensations of its completed nodes",
            )

    # -- run -----------------------------------------------------------------------------

    async def run(self) -> Status:
        """Run to a final status and return it (Completed, Failed or Cancelled).

        Raises:
            ContinueAsNew: the run drained to continue as new.
        """
        if self._carried is not None:  # going on where the previous Temporal run stopped
            self._lifecycle.start(paused=self._paused)
        else:
            self._lifecycle.start(paused=False)
            self._state.start_time = self._first_start or self._clock()
            if not self._quiet:
                self._emit(EventType.workflow_started)
            for node_id in self._given:  # a retry that completes them with an operator's output
                self._emit(EventType.node_completed, node_id=node_id)
            for node_id, status in self._scheduler.status.items():
                if (
                    status is NodeStatus.skipped
                    and self._nodes[node_id].status is NodeStatus.pending
                ):
                    # Skipped by the outputs of nodes given as completed (a pass's event).
                    self._nodes[node_id].status = NodeStatus.skipped
                    self._emit(EventType.node_skipped, node_id=node_id)
            if self._state.progress > 0 and not self._quiet:  # a retry's finished nodes
                self._emit(EventType.execution_progress_updated, progress=self._state.progress)
        try:
            while True:
                if self._internal_error is not None:
                    raise self._internal_error
                if self._failure is not None:
                    await self._stop_running()
                    await self._compensate("failed")
                    self._finish(Status.Failed)
                    break
                # Only after this run has started a node: each run makes progress, even when
                # its start event alone is over the size Temporal suggests continuing at.
                if (
                    not self._draining
                    and self._launched
                    and self._should_continue_as_new is not None
                ):
                    self._draining = self._should_continue_as_new()
                self._launch_ready()
                if not self._tasks:
                    if self._scheduler.is_finished():
                        self._finish(Status.Completed)
                        break
                    if self._draining:
                        state = self.carry()
                        if _size(state) <= MAX_PAYLOAD_BYTES:
                            raise ContinueAsNew(state)
                        # Cannot fit the next run's input: go on in this one (the outputs
                        # it must keep are that large) and do not ask again.
                        self._draining = False
                        self._should_continue_as_new = None
                        continue
                    self._check_not_stalled()
                await self._wake.wait()
                self._wake.clear()
        except asyncio.CancelledError:
            await self._stop_running()
            await self._compensate("cancelled")
            self._finish(Status.Cancelled)
        return self._lifecycle.status

    async def _compensate(self, reason: str) -> None:
        """Run the compensations of the completed nodes (:mod:`engine.runtime.compensation`)
        to their end, whatever cancellation arrives meanwhile; a pass or a map item has
        none (its execution compensates)."""
        if self._quiet or self._saga.started or not self._saga.pending_order():
            return
        if self._may_compensate is not None and not self._may_compensate():
            return
        work = asyncio.create_task(self._saga.run(self._runner, reason=reason, error=self._failure))
        if await shielded(work):
            self._saga.cancel_requested = True

    def end_unstarted(self, status: Status, error: str | None = None) -> None:
        """End before :meth:`run` began: cancelled, or refused a slot of its definition's
        ``max_concurrent_executions``, while it waited for one. No node ran."""
        for node_id in self._scheduler.cancel_pending():
            self._nodes[node_id].status = NodeStatus.cancelled
        if error:
            self._failure = error
            self._lifecycle.error_messages.append(error)
        if self._state.start_time is None:
            self._state.start_time = self._first_start or self._clock()
        self._finish(status)

    def _check_not_stalled(self) -> None:
        # Nothing runs and nodes are unfinished: only a pause may explain it.
        if not self._paused:
            pending = [n for n, s in self._scheduler.status.items() if not s.is_finished]
            raise RuntimeError(f"scheduler stalled with unfinished nodes {pending[:10]}")

    def _launch_ready(self) -> None:
        while (
            not self._paused
            and not self._draining
            and self._failure is None
            and len(self._tasks) < self._limit
        ):
            if not self._scheduler.has_ready():
                return
            node_id = self._scheduler.take_next()
            self._launched += 1
            record = self._nodes[node_id]
            record.status = NodeStatus.running
            if record.started_at is None:  # a retried node keeps its first start
                record.started_at = self._clock()
            self._emit(EventType.node_started, node_id=node_id)
            call = self._call_for(node_id)
            self._tasks[node_id] = asyncio.create_task(self._run_node(call))

    def _call_for(self, node_id: str) -> NodeCall:
        node = self.graph.nodes[node_id]
        global_config = self.workflow.global_configuration
        return NodeCall(
            execution_id=self.execution_id,
            workflow_id=self.workflow.workflow_id,
            node_id=node_id,
            node_name=node.name,
            plugin_id=node.plugin_id,
            inputs=self._scheduler.inputs_for(node_id, self.input_data),
            config=plugin_config(global_config, node.configuration),
            options=self._options(node_id),
            pass_id=self._pass_id,
            item_key=self._item_key,
        )

    def _options(self, node_id: str) -> NodeOptions:
        options = self._node_options.get(node_id)
        if options is None:
            node = self.graph.nodes[node_id]
            options = node_options(self.workflow.global_configuration, node.configuration)
            self._node_options[node_id] = options
        return options

    async def _run_node(self, call: NodeCall) -> None:
        node_id = call.node_id
        try:
            override = self._overrides.get(node_id)
            success = (
                NodeSuccess(override, attempts=0)
                if override is not None
                else (await self._runner(call))
            )
        except asyncio.CancelledError:
            override = self._overrides.get(node_id)
            if override is None:
                self._node_cancelled(node_id)
                return
            success = NodeSuccess(override, attempts=0)  # skipped by an operator while running
            self._finish_node(node_id, call, success)
        except NodeFailure as failure:
            self._node_failed(node_id, failure, call.inputs)
        except Exception as exc:  # a bug in the runner: surface it, do not swallow it
            self._internal_error = exc
        else:
            self._finish_node(node_id, call, success)
        finally:
            self._tasks.pop(node_id, None)
            self._wake.set()

    def _finish_node(self, node_id: str, call: NodeCall, success: NodeSuccess) -> None:
        try:
            if success.aggregated is not None:
                skipped = self._complete_map(node_id, success)
            else:
                skipped = self._scheduler.complete(node_id, success.output)
        except RoutingError as exc:
            self._node_failed(
                node_id,
                NodeFailure(str(exc), error_type="RoutingError", attempts=success.attempts),
                call.inputs,
            )
        else:
            self._node_completed(node_id, success, skipped)
            if node_id not in self._overrides and not self._quiet:
                self._saga.remember(node_id, call.inputs, success.output)

    async def _stop_running(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for node_id in self._scheduler.cancel_pending():
            self._nodes[node_id].status = NodeStatus.cancelled

    # -- recording -----------------------------------------------------------------------

    def _complete_map(self, node_id: str, success: NodeSuccess) -> list[str]:
        """A Splitter finished its map: its body and aggregator are done at once."""
        plan = map_plan(self.workflow, node_id)
        assert success.aggregated is not None
        args = (node_id, success.output, plan.body, plan.aggregator, success.aggregated)
        try:
            skipped = self._scheduler.complete_map(*args)
        except RoutingError:
            # Only a map whose entry edges fail on the summary asks: others replay unmarked.
            if self._map_entry_taken is not None and not self._map_entry_taken():
                raise
            skipped = self._scheduler.complete_map(*args, check_entry=False)
        now = self._clock()
        for body_id in plan.body:
            record = self._nodes[body_id]
            record.status = NodeStatus.completed
            record.started_at = record.completed_at = now
            record.result = (success.body_counts or {}).get(body_id, {})
            record.attempts = int(record.result.get("runs", 0))
            self._emit(EventType.node_completed, node_id=body_id)
        record = self._nodes[plan.aggregator]
        record.status = NodeStatus.completed
        record.started_at = record.completed_at = now
        record.attempts = 1
        record.result = success.aggregated
        self._emit(EventType.node_completed, node_id=plan.aggregator)
        return skipped

    def _node_completed(self, node_id: str, success: NodeSuccess, skipped: list[str]) -> None:
        record = self._nodes[node_id]
        record.status = NodeStatus.completed
        record.skipped_by_operator = node_id in self._overrides
        record.attempts += success.attempts  # a retried node adds to its earlier attempts
        record.completed_at = self._clock()
        record.result = success.output
        self._emit(EventType.node_completed, node_id=node_id)
        self._record_skipped(skipped, record.completed_at)
        self._update_progress()

    def _node_failed(
        self, node_id: str, failure: NodeFailure, inputs: dict[str, Any] | None = None
    ) -> None:
        node = self.graph.nodes[node_id]
        error = {
            "type": failure.error_type,
            "message": failure.message,
            "attempts": failure.attempts,
        }
        try:
            skipped = self._scheduler.fail(
                node_id,
                {**error, "node_id": node_id, "input": inputs or {}},
                optional=node.configuration.get("optional") is True,
            )
        except RoutingError as exc:  # a condition on an error route could not be evaluated
            skipped = None
            failure = NodeFailure(str(exc), error_type="RoutingError", attempts=failure.attempts)
        record = self._nodes[node_id]
        record.status = NodeStatus.failed
        record.attempts += failure.attempts
        record.completed_at = self._clock()
        record.error = error
        attempts = f"{failure.attempts} attempt{'s' if failure.attempts != 1 else ''}"
        message = (
            f"node '{node_id}' (plugin '{node.plugin_id}') failed after {attempts}: "
            f"{failure.error_type}: {failure.message}"
        )
        if skipped is not None:  # handled: an error route or an optional node
            record.error = {**error, "handled": True}
            self._emit(EventType.node_failed, node_id=node_id, error=message)
            self._record_skipped(skipped, record.completed_at)
            self._update_progress()
            return
        self._lifecycle.error_messages.append(message)
        self._emit(EventType.node_failed, node_id=node_id, error=message)
        self._update_progress()
        if self._failure is None:
            self._failure = message

    def _record_skipped(self, skipped: list[str], at: datetime | None) -> None:
        for skipped_id in skipped:
            self._nodes[skipped_id].status = NodeStatus.skipped
            self._nodes[skipped_id].completed_at = at
            self._emit(EventType.node_skipped, node_id=skipped_id)

    def _node_cancelled(self, node_id: str) -> None:
        self._scheduler.cancel(node_id)
        record = self._nodes[node_id]
        record.status = NodeStatus.cancelled
        record.completed_at = self._clock()
        self._emit(EventType.node_cancelled, node_id=node_id)

    def _update_progress(self) -> None:
        progress = self._scheduler.progress()
        if progress > self._state.progress:
            self._state.progress = progress
            self._emit(EventType.execution_progress_updated, progress=progress)

    def _finish(self, status: Status) -> None:
        # A pass or a map item: its execution reports the outcome.
        summary = self._saga.summary()
        self._lifecycle.finish(
            status,
            progress=self._state.progress,
            error=self._failure,
            announce=not self._quiet,
            details={SUMMARY_KEY: summary} if summary is not None else None,
        )

    def _emit(self, event_type: WorkflowEventType, **fields: Any) -> None:
        if self._sink is not None:
            if event_type is EventType.node_completed:
                fields["result"] = self._nodes[fields["node_id"]].result
            if event_type is not EventType.execution_progress_updated:
                self._sink(event_type, fields)
            return
        self._log.append(event_type, **fields)

    # -- reporting -----------------------------------------------------------------------

    @property
    def error_messages(self) -> list[str]:
        """Why the run failed or was cancelled, as its context says (a copy): the failure or
        cancellation first, then each compensation that failed."""
        return self._lifecycle.error_messages + self._saga.failure_messages()

    def node_states(self) -> dict[str, NodeState]:
        """Each node's state, as of now (what the context reports, typed), with its
        compensation once compensations have begun."""
        states = {
            node_id: record.state(node_id, self.graph.nodes[node_id].plugin_id)
            for node_id, record in self._nodes.items()
        }
        if self._saga.started:
            for node_id, state in states.items():
                compensation = self._saga.node_state(node_id)
                if compensation is not None:
                    states[node_id] = replace(state, compensation=compensation)
        return states

    def context(self, children: Mapping[str, str] | None = None) -> WorkflowExecutionContext:
        """The spec's execution context for this run, as of now; ``children``: the child
        execution each node call started, by call key (:attr:`NodeCall.key`)."""
        running = [n for n in self.graph.nodes if self._nodes[n].status is NodeStatus.running]
        execution_data: dict[str, Any] = {
            "input_data": self.input_data,
            "workflow_version": self.workflow.version,
            "execution_mode": self.workflow.execution_mode.value,
        }
        lifecycle = self._lifecycle
        if lifecycle.status is Status.Completed:
            execution_data["results"] = self._scheduler.results()
        summary = self._saga.summary()
        if summary is not None:
            execution_data[SUMMARY_KEY] = summary
        return WorkflowExecutionContext(
            execution_id=self.execution_id,
            workflow_id=self.workflow.workflow_id,
            status=lifecycle.status,
            start_time=self._state.start_time,
            end_time=lifecycle.end_time,
            execution_data=execution_data,
            node_states=node_state_dicts(self.node_states(), children),
            progress=self._state.progress,
            current_node=running[0] if running else "",
            error_messages=self.error_messages,
        )

    def events(self, after: int = 0, limit: int = 1000) -> list[WorkflowEvent]:
        """Events with ``sequence > after``, at most ``limit``, with results filled in (the
        oldest may have been dropped when the run continued as new)."""
        return with_results(
            self._log.after(after, limit),
            lambda node_id: self._nodes[node_id].result,
            self._scheduler.results,
        )

    def stored_events(self) -> list[WorkflowEvent]:
        """All events without results (results live once, in the context)."""
        return self._log.all()

    @property
    def event_count(self) -> int:
        """Sequence number of the last event (events dropped at continue-as-new count)."""
        return self._log.last_sequence

    # -- continue-as-new -----------------------------------------------------------------

    def carry(self) -> BatchRunState:
        """The run's state, taken while no node runs, small enough to start the next
        Temporal run with: the last :data:`CARRIED_EVENTS` events, and past
        :data:`CARRIED_OUTPUT_BYTES` of outputs, only those an unfinished node still reads
        and the results (the other nodes keep their status; the context lists them without
        a result: their outputs stay in the earlier runs' histories)."""
        status, outputs, errors, taken = self._scheduler.snapshot()
        nodes: dict[str, dict[str, Any]] = {}
        for node_id, record in self._nodes.items():
            untouched = not record.attempts and record.started_at is None
            if record.status is NodeStatus.pending and untouched:
                continue  # nothing to say yet (a retried node that runs again has its past)
            data = record.state(node_id, "").as_dict()
            del data["node_id"], data["plugin_id"]
            if record.result is None or record.result is outputs.get(node_id):
                data.pop("result", None)  # carried once, in outputs
            nodes[node_id] = data
        state = BatchRunState(
            start_time=(self._state.start_time or self._clock()).isoformat(),
            paused=self._paused,
            progress=self._state.progress,
            error_messages=list(self._lifecycle.error_messages),
            nodes=nodes,
            status={node_id: value.value for node_id, value in status.items()},
            outputs=outputs,
            errors=errors,
            taken=taken,
            overrides=dict(self._overrides),
            dropped_results=list(self._dropped_results),
            next_sequence=self._state.next_sequence,
            events=self._log.last(CARRIED_EVENTS),
            compensable=self._saga.carry(),
        )
        if len(json.dumps(outputs, default=str)) <= CARRIED_OUTPUT_BYTES:
            return state
        unneeded = [n for n in outputs if not self._scheduler.still_needed(n)]
        for node_id in unneeded:
            del state.outputs[node_id]
        state.dropped_results.extend(unneeded)
        return state


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _size(state: BatchRunState) -> int:
    return len(state.model_dump_json())
