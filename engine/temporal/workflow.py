"""Temporal glue for one execution: the generic interpreter workflow.

Every registered definition runs through this one workflow type. It adapts the pure
controllers to Temporal: :class:`~engine.runtime.interpreter.Interpreter` for the batch modes,
:class:`~engine.runtime.event_run.EventRun` for EventDriven and
:class:`~engine.runtime.stream_run.StreamRun`
for Streaming:

* nodes, sources and streams run through :class:`~engine.temporal.node_runner.TemporalNodeRunner`
  (activities, approvals, Splitter maps in this run or in shards, sub-workflows, the
  in-flight budget); this module keeps the run, its messages, continue-as-new, search
  attributes and new versions of the definition;
* ``pause`` and ``resume`` are updates whose validators reject invalid transitions (a rejected
  update writes nothing to history); cancellation is Temporal's own, so the UI and CLI cancel
  buttons work too; requests that make the run start work (``resume``, ``skip_node``,
  ``decide``) take effect in a workflow task of their own, so that a replay acts on the same
  state however it groups the update with the task before it (``control-in-own-task``);
* ``status`` and ``events`` are queries; ``events`` shows only what workflow tasks produced,
  never what a query's replay derives from events no workflow task has processed yet
  (:class:`_TaskTracker`);
* long-running executions receive ``events``, ``source_checkpoint``, ``stream_progress`` and
  ``definition_changed`` signals, subscribe to their definition's registry entity for new
  versions, and continue-as-new with their state when their history grows (the execution
  id stays the same);
* the run ends the way Temporal shows it: Completed with an :class:`ExecutionOutcome`,
  Failed with the outcome in the failure's details, or Canceled with the outcome in the memo
  (Temporal stores no result for a cancelled run, and a closed run must be readable with no
  worker running);
* when its starter found them registered (``ExecutionInput.search_attributes``), it keeps the
  ``OrchestratorStatus`` search attribute current (running, paused, completed, failed,
  cancelled; the starter sets ``OrchestratorWorkflowId`` and ``running``), behind the
  ``search-attributes`` patch so histories recorded before it replay unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.base.errors import PluginError, PluginErrorCode
    from engine.language import conditions
    from engine.language.models import (
        PluginWorkflow,
        WorkflowEventType,
        WorkflowExecutionContext,
        WorkflowExecutionStatus,
        WorkflowNodeType,
    )
    from engine.language.options import global_options
    from engine.language.validation import compile_workflow
    from engine.runtime.bounds import (
        checkpoint_problem,
        decision_problem,
        event_problem,
        fit_carried,
        json_bytes,
        progress_problem,
        queue_room,
        skip_problem,
        stripped_counters,
    )
    from engine.runtime.compensation import SUMMARY_KEY as COMPENSATION_SUMMARY_KEY
    from engine.runtime.contracts import (
        ADMISSION_GRANTED_SIGNAL,
        ADMISSION_RELEASE_SIGNAL,
        BUSY,
        CLAIM_SLOT_ACTIVITY,
        DEFINITION_CHANGED_SIGNAL,
        EVENTS_SIGNAL,
        EXECUTION_WORKFLOW,
        MAX_PAYLOAD_BYTES,
        READ_DEFINITION_ACTIVITY,
        SOURCE_CHECKPOINT_SIGNAL,
        STREAM_PROGRESS_SIGNAL,
        SUBMIT_EVENTS_UPDATE,
        SUBSCRIBE_SIGNAL,
        UNSUBSCRIBE_SIGNAL,
        Admission,
        ApprovalDecision,
        DefinitionLookup,
        DefinitionNotice,
        DefinitionReading,
        EventsPage,
        EventsSignal,
        ExecutionInput,
        ExecutionOutcome,
        IncomingEvent,
        LongRunState,
        MapShard,
        NodeCounters,
        SkipNode,
        SlotAnswer,
        SlotRelease,
        SlotRequest,
        SourceCheckpoint,
        StreamProgress,
        Subscription,
        admission_entity_id,
        definition_entity_id,
    )
    from engine.runtime.controllers import Host, controller_for
    from engine.runtime.event_run import EventRun
    from engine.runtime.interpreter import Interpreter, NodeCall, NodeSuccess
    from engine.runtime.lifecycle import ContinueAsNew
    from engine.runtime.long_run import MAX_EVENT_RESULT_BYTES, LongRun
    from engine.runtime.outcome_pack import FORMAT as OUTCOME_FORMAT
    from engine.runtime.stream_run import StreamRun
    from engine.temporal.node_runner import TemporalNodeRunner
    from engine.temporal.telemetry import STATUS_ATTRIBUTE

# Conditions compile in workflow code; their parser reads a grammar file, so build it here.
conditions.prepare()

OUTCOME_MEMO_KEY = "outcome"
SEARCH_ATTRIBUTES_PATCH = "search-attributes"
# Conditions are metered (engine.language.conditions); histories recorded before the meter
# evaluate as they did. Asked only when a condition is evaluated, where the marker always was.
CONDITION_METER_PATCH = "condition-meter"
BATCH_CONTINUE_AS_NEW_PATCH = "batch-continue-as-new"
# Long runs read new versions from the registry and check them (histories recorded before
# adopted the definition a signal carried).
DEFINITION_FROM_REGISTRY_PATCH = "definition-from-registry"
# Signal handlers drop values out of bounds (engine.runtime.bounds); histories recorded before took
# them. Consulted only when a value is out of bounds.
BOUNDED_SIGNALS_PATCH = "bounded-signals"
# A long run shrinks what it carries to fit continue-as-new, or fails if it cannot.
CARRY_BUDGET_PATCH = "carry-budget"
# How a running execution reads its registered definition: a query, tried a few times. A
# cancellation or continue-as-new waits for a read under way, so it stays short; a read that
# fails is recorded, and the next notice (or subscription) reads again.
_READ_DEFINITION_TIMEOUT = timedelta(seconds=15)
_READ_DEFINITION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5), maximum_attempts=3
)
# Characters of a refusal's reason kept in the event that records it.
_REASON_CHARS = 1000
# A signal that only records something (a checkpoint, stream progress, a refused event)
# still grows the history: when that makes continue-as-new due, it wakes the run's loop,
# which would otherwise wait for some other event (histories recorded before never woke).
WAKE_TO_CONTINUE_PATCH = "wake-to-continue-as-new"
# A retried batch execution goes on from its earlier node records (attempts, times, progress,
# the nodes an operator skipped); histories recorded before started from blank records.
RETRY_RECORDS_PATCH = "retry-keeps-records"
# An EventDriven run starts no pass while a source it must restart is still stopping (see
# EventRun.restart_sources_first); consulted once, when a run starts. Histories recorded
# before started passes at once, which replays could order differently (TMPRL1100).
SOURCES_FIRST_PATCH = "sources-restart-before-passes"
# Control requests that make a run start work (resume, skip_node, decide) take effect in a
# workflow task of their own, after a 1 ms timer. An update that follows a workflow task which
# sent no command may be handled, on a worker without the run in its cache, in one activation
# with that task's activity results and before them, and on replay after them: acting at once,
# the run could start nodes in another order on replay (TMPRL1100). Histories recorded before
# applied them at once.
CONTROL_OWN_TASK_PATCH = "control-in-own-task"
# A failed or cancelled batch run compensates its completed nodes (engine.runtime.compensation).
# Definitions recorded before had no compensations; asked only when a run has some to run.
COMPENSATION_PATCH = "compensation"
# An ended run stores its outcome in the compact form of engine.runtime.outcome_pack (about a
# seventh of the plain form for a chain); runs recorded before stored the plain form. Asked
# once, as the run ends.
COMPACT_OUTCOME_PATCH = "compact-outcome"
_OWN_TASK = timedelta(milliseconds=1)
# A definition with ``max_concurrent_executions``: the run claims a slot from the definition's
# admission workflow (engine.temporal.admission) before it starts, shows ``queued`` while it
# waits, and gives the slot back when it ends. Consulted only by runs of such definitions.
ADMISSION_PATCH = "concurrency-admission"
# A finished map's entry edges (splitter -> body) resolve as taken instead of being
# evaluated again on the splitter's summary, where a condition or port about the item fails.
MAP_ENTRY_PATCH = "map-entry-edges"
# An event whose pass cannot route it (a condition about a field it lacks) fails that pass,
# counted and reported; before, the pass's task ended with the error, losing the event and
# its slot of max_concurrent_events (enough such events stopped every later pass).
UNROUTABLE_EVENT_PATCH = "unroutable-event-fails-pass"
_CLAIM_TIMEOUT = timedelta(seconds=15)
_CLAIM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
)
# Events an ended run keeps when all of them would not fit in its outcome.
_KEPT_EVENTS = 2000
Status = WorkflowExecutionStatus
_SOURCE = WorkflowNodeType.Source
_Model = TypeVar("_Model", bound=BaseModel)


@workflow.defn(name=EXECUTION_WORKFLOW)
class PluginWorkflowExecution:
    """Interprets one execution of a registered :class:`~engine.language.models.PluginWorkflow`."""

    @workflow.init
    def __init__(self, params: ExecutionInput) -> None:
        self._interpreter: Interpreter | None = None
        self._long: LongRun | None = None
        self._setup_error: PluginError | None = None
        self._definition = params.workflow
        self._runner = TemporalNodeRunner(
            params.workflow,
            params.subworkflows,
            long_run=lambda: self._long,
            meter_conditions=_meter_conditions,
            light_plugins=params.light_plugins,
        )
        self._searchable = params.search_attributes
        execution_id = workflow.info().workflow_id
        self._shard = params.map_shard
        self._task_tracker = _TaskTracker()
        self._tracking: asyncio.Task[None] | None = None
        self._input_data = params.input_data
        self._carried_sizes: dict[str, int] = {}  # see _queue_capacity
        self._reading_definition = False  # see _refresh_definition
        self._suggestion_answered = False  # see _validate_submit_events
        self._definition_wanted = False
        self._queued = False  # waiting for a slot of max_concurrent_executions
        self._granted = False  # the admission workflow said a slot is free
        self._slot: SlotRequest | None = None  # the slot this run holds or waits for
        self._budget: tuple[PluginWorkflow, int] | None = None  # see _history_budget
        try:
            graph = compile_workflow(params.workflow)
            # A shard of a parent's map has no controller: run() runs its items.
            if self._shard is None:
                controller = controller_for(
                    params,
                    graph,
                    execution_id=execution_id,
                    host=Host(
                        runner=self._run_node,
                        watch=self._runner.watch_source,
                        run_stream=self._runner.run_stream,
                        clock=workflow.now,
                        long_should_continue_as_new=self._should_continue_as_new,
                        batch_should_continue_as_new=self._batch_should_continue_as_new,
                        meter_conditions=_meter_conditions,
                        may_compensate=_may_compensate,
                        map_entry_taken=_map_entry_taken,
                        unroutable_fails_pass=_unroutable_fails_pass,
                    ),
                )
                if isinstance(controller, LongRun):
                    self._long = controller
                else:
                    self._interpreter = controller
        except PluginError as exc:
            self._setup_error = exc

    @workflow.run
    async def run(self, params: ExecutionInput) -> ExecutionOutcome:
        if self._shard is not None and self._setup_error is None:
            return await self._run_shard(params.workflow, self._shard)
        self._tracking = asyncio.create_task(self._track_tasks())
        if self._long is not None:
            return await self._run_long(params, self._long)
        if self._interpreter is None:
            error = self._setup_error
            assert error is not None
            self._publish_status(Status.Failed)
            raise ApplicationError(error.message, type=error.code.value, non_retryable=True)
        refused = await self._admit(params)
        if refused is not None:
            self._interpreter.end_unstarted(*refused)
            return await self._end_batch(self._interpreter, refused[0])
        if (
            params.earlier is not None
            and params.batch_state is None
            and workflow.patched(RETRY_RECORDS_PATCH)
        ):
            self._interpreter.continue_from(params.earlier)
        try:
            status = await self._interpreter.run()
        except ContinueAsNew:
            await workflow.wait_condition(workflow.all_handlers_finished)
            # The state as it is at the hand-over, as for long runs: a control request
            # applied while the run drained (see _own_task) is carried too.
            state = self._interpreter.carry()
            state.runs = (params.batch_state.runs if params.batch_state else 1) + 1
            workflow.continue_as_new(
                params.model_copy(update={"batch_state": state, "completed": {}, "earlier": None})
            )
        return await self._end_batch(self._interpreter, status)

    async def _end_batch(self, interpreter: Interpreter, status: Status) -> ExecutionOutcome:
        await self._release()
        await workflow.wait_condition(workflow.all_handlers_finished)
        outcome = _fit(
            ExecutionOutcome(
                context=interpreter.context(),
                events=interpreter.stored_events(),
                format=_outcome_format(),
            )
        )
        self._publish_status(status)
        return _end(status, outcome)

    async def _run_long(self, params: ExecutionInput, long: LongRun) -> ExecutionOutcome:
        refused = await self._admit(params)
        if refused is not None:
            long.finish(*refused)
            await self._release()
            await workflow.wait_condition(workflow.all_handlers_finished)
            outcome = _fit(ExecutionOutcome(context=long.context(), events=long.events(0, 10**9)))
            self._publish_status(refused[0])
            return _end(refused[0], outcome)
        if isinstance(long, EventRun) and workflow.patched(SOURCES_FIRST_PATCH):
            long.restart_sources_first()
        await self._subscription(SUBSCRIBE_SIGNAL, long.workflow)
        try:
            status = await long.run()
        except ContinueAsNew:
            await workflow.wait_condition(workflow.all_handlers_finished)
            # The state as it is now, not as it was when the run started draining: events
            # and control requests (see _own_task) that came while handlers finished are
            # carried too. The copy taken then shared the event list but kept the older next
            # sequence number, so the next run numbered its first event twice.
            state = long.carried_state()
            following = self._following_run(params, state)
            if isinstance(following, ExecutionInput):
                workflow.continue_as_new(following)
            long.finish(Status.Failed, following)
            status = Status.Failed
        await self._subscription(UNSUBSCRIBE_SIGNAL, long.workflow)
        await self._release()
        await workflow.wait_condition(workflow.all_handlers_finished)
        outcome = _fit(
            ExecutionOutcome(
                context=long.context(), events=long.events(0, 10**9), format=_outcome_format()
            )
        )
        self._publish_status(status)
        return _end(status, outcome)

    # -- max_concurrent_executions -------------------------------------------------------------

    def _slot_request(self, params: ExecutionInput) -> SlotRequest | None:
        """What to ask the admission workflow for, or None: the definition has no limit, the
        run continues an earlier one (which holds the slot), or it is a sub-workflow's
        child or a map shard (they run under their parent's slot)."""
        definition = params.workflow
        if self._shard is not None or params.batch_state is not None or params.state is not None:
            return None
        try:
            options = global_options(definition.global_configuration)
        except ValueError:
            return None  # validated at registration; the run fails on it elsewhere
        limit = options.max_concurrent_executions
        info = workflow.info()
        if limit is None or info.parent is not None:
            return None
        if not workflow.patched(ADMISSION_PATCH):
            return None
        return SlotRequest(
            workflow_id=definition.workflow_id,
            execution_id=info.workflow_id,
            limit=limit,
            overflow=options.overflow,
            claim=True,
        )

    async def _admit(self, params: ExecutionInput) -> tuple[Status, str | None] | None:
        """Wait for a slot of the definition's ``max_concurrent_executions`` (the status says
        ``queued`` meanwhile). None: go on; else how the run ends without running (cancelled
        while it waited, or refused)."""
        request = self._slot_request(params)
        if request is None:
            return None
        self._slot = request
        self._queued = True
        try:
            answer: SlotAnswer = await workflow.execute_activity(
                CLAIM_SLOT_ACTIVITY,
                request,
                result_type=SlotAnswer,
                activity_id="@admission",  # no node id has "@"
                summary=f"claim a slot of {request.workflow_id} (max {request.limit} at once)",
                start_to_close_timeout=_CLAIM_TIMEOUT,
                retry_policy=_CLAIM_RETRY,
            )
            if answer.verdict == "rejected":
                return Status.Failed, f"concurrency limit reached: {answer.reason}"
            if answer.verdict != "granted":
                self._publish_status(Status.Queued)
                await workflow.wait_condition(lambda: self._granted)
        except asyncio.CancelledError:
            return Status.Cancelled, None
        except ActivityError as err:
            cause = err.cause.message if isinstance(err.cause, ApplicationError) else err.cause
            return Status.Failed, f"could not claim a slot to run: {cause or err}"
        finally:
            self._queued = False
        self._publish_status(Status.Running)
        return None

    async def _release(self) -> None:
        """Give the slot (or the place in the queue) back: the run ends."""
        request = self._slot
        if request is None:
            return
        self._slot = None
        handle = workflow.get_external_workflow_handle(
            admission_entity_id(request.workflow_id, workflow.info().task_queue)
        )
        try:
            await handle.signal(
                ADMISSION_RELEASE_SIGNAL, SlotRelease(execution_id=request.execution_id)
            )
        except Exception:  # the admission workflow is gone: it holds nothing any more
            workflow.logger.warning("could not release the slot of %s", request.execution_id)

    @workflow.signal(name=ADMISSION_GRANTED_SIGNAL)
    def admission_granted(self) -> None:
        """The definition's admission workflow gave this run a slot."""
        self._granted = True

    def _following_run(self, params: ExecutionInput, state: LongRunState) -> ExecutionInput | str:
        """The input of a long run's next Temporal run, shrunk to fit Temporal's payload
        limit (:func:`engine.runtime.bounds.fit_carried`); or why it cannot fit even so. The run
        then fails saying why, where it would otherwise fail every workflow task from then
        on (histories recorded before the patch went on unchecked)."""
        following = ExecutionInput(
            workflow=state.workflow,
            input_data=params.input_data,
            state=state,
            search_attributes=params.search_attributes,
            light_plugins=params.light_plugins,
        )
        if not workflow.patched(CARRY_BUDGET_PATCH):
            return following
        try:
            return fit_carried(following)
        except PluginError as exc:
            workflow.logger.error("cannot continue as new: %s", exc.message)
            return exc.message

    def _publish_status(self, status: Status) -> None:
        """Set ``OrchestratorStatus`` for Temporal UI's filters, if the starter asked for it
        (a new run: histories recorded before the patch have no marker and never upsert)."""
        if self._searchable and workflow.patched(SEARCH_ATTRIBUTES_PATCH):
            workflow.upsert_search_attributes([STATUS_ATTRIBUTE.value_set(status.value)])

    def _wake_if_continuing(self) -> None:
        """Wake a long run's loop if continuing as new is due (see WAKE_TO_CONTINUE_PATCH)."""
        if (
            self._long is not None
            and self._should_continue_as_new()
            and workflow.patched(WAKE_TO_CONTINUE_PATCH)
        ):
            self._long.wake()

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        definition = self._long.workflow if self._long is not None else self._definition
        return info.is_continue_as_new_suggested() or (
            info.get_current_history_length() > self._history_budget(definition)
        )

    def _history_budget(self, definition: PluginWorkflow) -> int:
        """``max_history_events`` of the definition the run follows now, read once per
        version (the batch interpreter asks after every step)."""
        budget = self._budget
        if budget is None or budget[0] is not definition:
            budget = (
                definition,
                global_options(definition.global_configuration).max_history_events,
            )
            self._budget = budget
        return budget[1]

    def _batch_should_continue_as_new(self) -> bool:
        """A batch run drains and continues as new when the history grows long (new runs
        only: histories recorded before the patch went on in one run)."""
        return self._should_continue_as_new() and workflow.patched(BATCH_CONTINUE_AS_NEW_PATCH)

    async def _subscription(self, signal: str, definition: PluginWorkflow) -> None:
        """Ask the registry entity for new versions (or stop asking); it may be gone."""
        info = workflow.info()
        entity = workflow.get_external_workflow_handle(
            definition_entity_id(definition.workflow_id, info.task_queue)
        )
        try:
            await entity.signal(
                signal, Subscription(execution_id=info.workflow_id, version=definition.version)
            )
        except Exception:  # an unregistered definition: nothing will change any more
            workflow.logger.info("no registry entity to %s", signal)

    async def _track_tasks(self) -> None:
        """Observe every activation (a condition is checked after each step of one)."""

        def observe() -> bool:
            if self._long is not None:
                self._task_tracker.observe(self._long.last_sequence)
            elif self._interpreter is not None:
                self._task_tracker.observe(self._interpreter.event_count)
            return False

        await workflow.wait_condition(observe)

    # -- messages --------------------------------------------------------------------------

    @workflow.update
    def pause(self) -> None:
        """Stop starting nodes (and reading sources); running nodes finish."""
        self._require().pause()
        self._publish_status(Status.Paused)

    @pause.validator
    def _validate_pause(self) -> None:
        self._validate("pause")

    @workflow.update
    async def resume(self) -> None:
        """Start nodes again (in a workflow task of its own: see _own_task)."""
        await self._own_task("resume")
        _applied(self._require().resume)
        self._publish_status(Status.Running)

    @resume.validator
    def _validate_resume(self) -> None:
        self._validate("resume")

    @workflow.query
    def status(self) -> WorkflowExecutionContext:
        """The execution context as of now."""
        if self._shard is not None:
            return WorkflowExecutionContext(
                execution_id=workflow.info().workflow_id,
                workflow_id=self._definition.workflow_id,
                status=Status.Running,
                execution_data={
                    "map_shard": {
                        "splitter": self._shard.splitter,
                        "offset": self._shard.offset,
                        "items": len(self._shard.items),
                    }
                },
            )
        context = self._require().context(children=self._runner.children)
        self._runner.annotate(context)
        if self._queued:
            context.status = Status.Queued
        return context

    @workflow.update
    async def skip_node(self, request: SkipNode) -> None:
        """Complete a node with a given output instead of running it (batch modes; in a
        workflow task of its own: see _own_task)."""
        interpreter = self._interpreter
        assert isinstance(interpreter, Interpreter)
        await self._own_task(f"skip {request.node_id}")
        _applied(lambda: interpreter.skip_node(request.node_id, request.output))

    @skip_node.validator
    def _validate_skip_node(self, request: SkipNode) -> None:
        _refuse_out_of_bounds(skip_problem(request))
        if not isinstance(self._interpreter, Interpreter):
            raise ApplicationError(
                "only executions of batch modes can skip a node",
                type=PluginErrorCode.InvalidState.value,
                non_retryable=True,
            )
        try:
            self._interpreter.check_skip(request.node_id)
        except PluginError as exc:
            raise ApplicationError(exc.message, type=exc.code.value, non_retryable=True) from None

    @workflow.update
    async def decide(self, decision: ApprovalDecision) -> None:
        """A person's decision for a node waiting in ``approval`` (in a workflow task of its
        own: see _own_task)."""
        await self._own_task(f"decide {decision.node_id}")
        self._runner.decide(decision)

    @decide.validator
    def _validate_decide(self, decision: ApprovalDecision) -> None:
        _refuse_out_of_bounds(decision_problem(decision))
        self._runner.approval_key(decision.node_id)

    @workflow.query
    def events(self, after: int) -> EventsPage:
        """Events with a sequence number above ``after``, up to the last one a workflow task
        produced (:class:`_TaskTracker`)."""
        if self._long is not None:
            events, last = self._long.events(after), self._long.last_sequence
        else:
            interpreter = self._require()
            assert isinstance(interpreter, Interpreter)
            events, last = interpreter.events(after), interpreter.event_count
        settled = self._task_tracker.settled
        if settled is not None and last > settled:
            events = [event for event in events if event.sequence <= settled]
            last = settled
        return EventsPage(events=events, last_sequence=last)

    @workflow.query
    def admission(self) -> Admission:
        """Whether clients may send events now (EventDriven executions)."""
        if isinstance(self._long, EventRun):
            return self._long.admission(workflow.info().get_current_history_length())
        return Admission(accepting=False, reason="not an EventDriven execution")

    @workflow.update(name=SUBMIT_EVENTS_UPDATE)
    def submit_events(self, signal: EventsSignal) -> int:
        """Client events, admitted only while the execution can take them (the validator
        refuses, writing nothing, while its queue is full or it is continuing as new);
        returns how many events wait."""
        assert isinstance(self._long, EventRun)
        self._long.accept(signal.events)
        return len(self._long.state.queue)

    @submit_events.validator
    def _validate_submit_events(self, signal: EventsSignal) -> None:
        for event in signal.events:
            if problem := event_problem(event):
                _refuse_out_of_bounds(f"event {event.event_id[:100]!r}: {problem}")
        if not isinstance(self._long, EventRun) or self._long.status.is_terminal:
            raise ApplicationError(
                "events go to running EventDriven executions",
                type=PluginErrorCode.InvalidState.value,
                non_retryable=True,
            )
        self._check_queue_room(self._long, signal.events)
        info = workflow.info()
        admission = self._long.admission(info.get_current_history_length())
        if not admission.accepting:
            raise ApplicationError(admission.reason, type=BUSY, non_retryable=True)
        # Temporal suggests continue-as-new at 90% of the updates a run may take: refused
        # events write nothing and do not count, so the rest stay for control requests. But a
        # refused update cannot wake an idle run to act on the suggestion, so one event is
        # taken (it wakes the loop, which drains) and the ones after it are refused. The flag
        # is read only here: validators do not run on replay, so it cannot change a history.
        if info.is_continue_as_new_suggested():
            if self._suggestion_answered:
                raise ApplicationError(
                    "continuing as new (Temporal suggested it)", type=BUSY, non_retryable=True
                )
            self._suggestion_answered = True

    @workflow.signal(name=EVENTS_SIGNAL)
    def receive_events(self, signal: EventsSignal) -> None:
        """Events for an EventDriven execution (from its sources). Anyone who can reach
        Temporal can send this signal: events out of bounds, or beyond what the run can
        carry, are dropped with a warning and an ``events_refused`` event."""
        if isinstance(self._long, EventRun):
            self._long.accept(self._events_within_bounds(self._long, signal.events))
        else:
            workflow.logger.warning("ignored events: not an EventDriven execution")

    @workflow.signal(name=SOURCE_CHECKPOINT_SIGNAL)
    def receive_checkpoint(self, signal: SourceCheckpoint) -> None:
        """Where a stopped event source will resume (dropped unless it is one of the
        execution's sources and within ``MAX_CHECKPOINT_BYTES``)."""
        self._wake_if_continuing()
        if isinstance(self._long, EventRun):
            sources = {n.node_id for n in self._long.workflow.nodes if n.node_type is _SOURCE}
            sources.update(self._long.state.checkpoints)
            problem = checkpoint_problem(signal, sources)
            if problem and workflow.patched(BOUNDED_SIGNALS_PATCH):
                workflow.logger.warning("ignored a source checkpoint: %s", problem)
                return
            self._long.record_checkpoint(signal.node_id, signal.checkpoint)

    @workflow.signal(name=STREAM_PROGRESS_SIGNAL)
    def receive_progress(self, signal: StreamProgress) -> None:
        """Counters and checkpoint of the running stream (dropped if they name nodes the
        execution does not have or the checkpoint is too large; last results and errors
        are cut to what a long run keeps)."""
        self._wake_if_continuing()
        if not isinstance(self._long, StreamRun):
            return
        nodes = {node.node_id for node in self._long.workflow.nodes}
        nodes.update(self._long.state.counters)
        problem = progress_problem(signal, nodes)
        bounded = signal.model_copy(
            update={"counters": {k: _kept_counters(c) for k, c in signal.counters.items()}}
        )
        if (problem or bounded != signal) and workflow.patched(BOUNDED_SIGNALS_PATCH):
            if problem:
                workflow.logger.warning("ignored stream progress: %s", problem)
                return
            signal = bounded
        self._long.progress(signal)

    @workflow.signal(name=DEFINITION_CHANGED_SIGNAL)
    async def receive_definition(self, notice: RawValue) -> None:
        """The registry holds a new version of the definition: read it from the registry,
        check it and adopt it at the next event or batch. What the signal carries is never
        adopted (anyone who can reach Temporal can send it). Batch executions keep the
        version they started with."""
        if self._long is None:
            return
        if not workflow.patched(DEFINITION_FROM_REGISTRY_PATCH):
            # Histories recorded before: the definition the signal carried was adopted.
            definition = _decoded(notice, PluginWorkflow)
            if definition is not None:
                self._long.adopt(definition)
            return
        hint = _decoded(notice, DefinitionNotice)
        if hint is not None and 0 < hint.version <= self._long.workflow.version:
            self._wake_if_continuing()
            return  # an old or repeated notice
        await self._refresh_definition()

    # -- bounds on what comes in (engine.runtime.bounds) ---------------------------------------

    def _queue_capacity(self, long: LongRun) -> int:
        """Bytes of events the run's queue may hold in all (:func:`engine.runtime.bounds.queue_room`
        with an empty queue); the definition's and the input's sizes are measured once."""
        definition = long.workflow
        key = f"definition-{definition.version}"
        if key not in self._carried_sizes:
            self._carried_sizes[key] = json_bytes(definition.model_dump(exclude_defaults=True))
        if "input" not in self._carried_sizes:
            self._carried_sizes["input"] = json_bytes(self._input_data)
        empty = long.state.model_copy(update={"queue": []})
        return queue_room(
            empty,
            definition_bytes=self._carried_sizes[key],
            input_bytes=self._carried_sizes["input"],
        )

    def _check_queue_room(self, long: LongRun, events: list[IncomingEvent]) -> None:
        """Refuse events the run could not carry across continue-as-new: ``Busy`` while the
        queue holds too much, ``InvalidInput`` if they would not fit even in an empty one."""
        capacity = self._queue_capacity(long)
        incoming = json_bytes(events)
        if incoming > capacity:
            _refuse_out_of_bounds(
                f"{len(events)} events of {incoming:,} bytes do not fit: this execution can "
                f"queue at most {max(0, capacity):,} bytes of events (what it carries from "
                "one Temporal run to the next is limited)"
            )
        queued = json_bytes(long.state.queue)
        if queued + incoming > capacity:
            raise ApplicationError(
                f"{len(long.state.queue)} queued events hold {queued:,} bytes of {capacity:,}",
                type=BUSY,
                non_retryable=True,
            )

    def _events_within_bounds(
        self, long: EventRun, events: list[IncomingEvent]
    ) -> list[IncomingEvent]:
        """The events of a signal the run can take: within bounds, and within what the queue
        may hold. The others are dropped with a warning and an ``events_refused`` event
        (histories recorded before the patch took them all)."""
        room = self._queue_capacity(long) - json_bytes(long.state.queue)
        kept: list[IncomingEvent] = []
        reasons: list[str] = []
        for event in events:
            problem = event_problem(event)
            size = json_bytes(event) + 1
            if problem is None and size > room:
                problem = f"{size:,} bytes; the queue has room for {max(0, room):,}"
            if problem is None:
                room -= size
                kept.append(event)
            else:
                reasons.append(f"event {event.event_id[:100]!r}: {problem}")
        if not reasons or not workflow.patched(BOUNDED_SIGNALS_PATCH):
            return events
        workflow.logger.warning("dropped %d events: %s", len(reasons), reasons[0])
        if not long.status.is_terminal:
            long.emit(
                WorkflowEventType.events_refused,
                details={"count": len(reasons), "reason": reasons[0][:_REASON_CHARS]},
            )
        return kept

    # -- new versions of the definition ------------------------------------------------------

    async def _refresh_definition(self) -> None:
        """Read the registered definition and adopt it if it is newer and valid. Notices
        that arrive while a read is under way lead to one more read after it, never to
        several at once."""
        self._definition_wanted = True
        if self._reading_definition:
            return
        self._reading_definition = True
        try:
            while self._definition_wanted:
                self._definition_wanted = False
                await self._read_definition()
        finally:
            self._reading_definition = False

    async def _read_definition(self) -> None:
        long = self._long
        assert long is not None
        current = long.workflow
        lookup = DefinitionLookup(
            workflow_id=current.workflow_id, task_queue=workflow.info().task_queue
        )
        try:
            async with self._runner.in_flight():
                reading: DefinitionReading = await workflow.execute_activity(
                    READ_DEFINITION_ACTIVITY,
                    lookup,
                    result_type=DefinitionReading,
                    activity_id=self._runner.next_activity_id("@definition"),  # no node id has "@"
                    summary=f"read the registered definition of {current.workflow_id}",
                    start_to_close_timeout=_READ_DEFINITION_TIMEOUT,
                    retry_policy=_READ_DEFINITION_RETRY,
                )
        except ActivityError as err:
            cause = err.cause.message if isinstance(err.cause, ApplicationError) else err.cause
            self._refuse_definition(0, f"the registry could not be read: {cause or err}")
            return
        if reading.definition is None:
            if reading.refused:
                self._refuse_definition(reading.version, reading.refused)
            return  # unregistered: the execution keeps the version it runs
        definition = reading.definition
        same = definition.workflow_id == current.workflow_id
        if same and definition.version <= long.workflow.version:
            return  # nothing newer (a notice raced an earlier read)
        if problem := _succession_problem(long.workflow, definition):
            self._refuse_definition(definition.version, problem)
            return
        if not long.status.is_terminal:
            long.adopt(definition)

    def _refuse_definition(self, version: int, reason: str) -> None:
        """Log and record (``definition_refused``) a version the run does not adopt."""
        workflow.logger.warning("definition version %s not adopted: %s", version, reason)
        long = self._long
        if long is not None and not long.status.is_terminal:
            long.emit(
                WorkflowEventType.definition_refused,
                details={"workflow_version": version, "reason": reason[:_REASON_CHARS]},
            )

    # -- internals -------------------------------------------------------------------------

    def _require(self) -> Interpreter | LongRun:
        if self._long is not None:
            return self._long
        if self._interpreter is None:
            message = self._setup_error.message if self._setup_error else "not initialised"
            raise ApplicationError(message, type=PluginErrorCode.InvalidState.value)
        return self._interpreter

    async def _own_task(self, request: str) -> None:
        """Let a control request that makes the run start work take effect in a workflow task
        of its own (CONTROL_OWN_TASK_PATCH): whatever the workflow task that brought it also
        applied, and however a replay groups it, the run then acts on the same state. The
        request is checked again when it takes effect (the run may have moved on)."""
        if workflow.patched(CONTROL_OWN_TASK_PATCH):
            await workflow.sleep(_OWN_TASK, summary=f"{request}: applied in its own workflow task")

    async def _run_node(self, call: NodeCall) -> NodeSuccess:
        """The controller's node runner (tests/replay/broken_workflow.py changes it to prove
        that the replay tests catch a changed run)."""
        return await self._runner(call)

    def _validate(self, action: str) -> None:
        try:
            self._require().check_transition(action)
        except PluginError as exc:
            raise ApplicationError(exc.message, type=exc.code.value, non_retryable=True) from None

    async def _run_shard(self, definition: PluginWorkflow, shard: MapShard) -> ExecutionOutcome:
        """This execution is one shard of a parent's map: run its items, return results."""
        started = workflow.now()
        outcome = await self._runner.map_shard(definition, shard)
        await workflow.wait_condition(workflow.all_handlers_finished)
        context = WorkflowExecutionContext(
            execution_id=workflow.info().workflow_id,
            workflow_id=definition.workflow_id,
            status=Status.Completed,
            start_time=started,
            end_time=workflow.now(),
            progress=1.0,
            execution_data={
                "map": {
                    "results": outcome.results,
                    "errors": outcome.errors,
                    "counts": outcome.counts,
                }
            },
        )
        return ExecutionOutcome(context=context)


class _TaskTracker:
    """Tells the activations of workflow tasks from the one a query's replay may add.

    The server sends a query straight to a worker when no workflow task is pending. A worker
    without the run in its cache (restarted, evicted, another worker; the tests' workers cache
    nothing) replays the history it then fetches, which may have grown in the meantime: an
    activity completed, then ``WorkflowTaskScheduled``, no ``WorkflowTaskStarted``. Core
    applies those trailing events too, in an activation with the previous task's time and
    history size. What the run emits there is provisional: the workflow task that processes
    those events comes later with a time of its own (the events' timestamps), and may see more
    (a signal, an update arriving with them). A query shows no provisional event.

    Each workflow task has a ``WorkflowTaskStarted`` event, so a new time and a larger history
    size: an activation with a new history length but the previous one's time and size is
    provisional. A cached run never replays, so it never has one.
    """

    def __init__(self) -> None:
        self._last: tuple[int, int, datetime] | None = None  # history length, size, time
        self._provisional = False
        self._sequence = 0  # the last event of a workflow task

    @property
    def settled(self) -> int | None:
        """The last event a query may show, or None: all of them."""
        return self._sequence if self._provisional else None

    def observe(self, last_sequence: int) -> None:
        """Record the current activation; ``last_sequence``: the run's last event."""
        info = workflow.info()
        now = (info.get_current_history_length(), info.get_current_history_size(), workflow.now())
        if self._last is not None and now[0] != self._last[0]:
            self._provisional = now[1:] == self._last[1:]
        self._last = now
        if not self._provisional:
            self._sequence = last_sequence


def _applied(action: Callable[[], None]) -> None:
    """Apply a control request; a PluginError (the request no longer fits the run) fails the
    request, not the workflow task."""
    try:
        action()
    except PluginError as exc:
        raise ApplicationError(exc.message, type=exc.code.value, non_retryable=True) from None


def _refuse_out_of_bounds(problem: str | None) -> None:
    """Refuse an update whose argument is out of bounds (it writes nothing to history)."""
    if problem:
        raise ApplicationError(problem, type=PluginErrorCode.InvalidInput.value, non_retryable=True)


def _decoded(raw: RawValue, kind: type[_Model]) -> _Model | None:
    """A signal's argument as ``kind``, or None (logged) if it is not one."""
    try:
        value = workflow.payload_converter().from_payload(raw.payload, kind)
    except Exception as exc:  # anything may arrive: never fail the run over it
        workflow.logger.warning("ignored a signal that is not a %s: %s", kind.__name__, exc)
        return None
    return value if isinstance(value, kind) else None


def _succession_problem(current: PluginWorkflow, candidate: PluginWorkflow) -> str | None:
    """Why ``candidate`` cannot follow ``current`` in a running execution, or None: it must
    be a later version of the same definition in the same mode, and valid under the rules
    workflow code applies (registration's stricter rules were applied when it was read)."""
    if candidate.workflow_id != current.workflow_id:
        return (
            f"it is the definition of '{candidate.workflow_id[:200]}', not of "
            f"'{current.workflow_id}'"
        )
    if candidate.version <= current.version:
        return f"version {candidate.version} does not follow version {current.version}"
    if candidate.execution_mode is not current.execution_mode:
        return (
            f"it runs in {candidate.execution_mode.name} mode; a running "
            f"{current.execution_mode.name} execution keeps its mode"
        )
    try:
        compile_workflow(candidate)
    except PluginError as exc:
        return exc.message
    return None


def _kept_counters(counters: NodeCounters) -> NodeCounters:
    """Stream counters as a report may bring them: a last result only up to
    ``MAX_EVENT_RESULT_BYTES``, the last error cut short."""
    kept = stripped_counters(counters)
    if counters.last_result is not None and json_bytes(counters.last_result) <= (
        MAX_EVENT_RESULT_BYTES
    ):
        kept.last_result = counters.last_result
    return kept


def _end(status: Status, outcome: ExecutionOutcome) -> ExecutionOutcome:
    """End the run the way Temporal should show it (see the module docstring)."""
    if status is Status.Completed:
        return outcome
    if status is Status.Failed:
        message = outcome.context.error_messages[0] if outcome.context.error_messages else ""
        summary = outcome.context.execution_data.get(COMPENSATION_SUMMARY_KEY)
        if isinstance(summary, dict) and summary.get("failed"):
            # The original failure first; the compensations that failed after it.
            message = f"{message}; compensation failed for node(s) " + ", ".join(
                f"'{node_id}'" for node_id in summary["failed"][:20]
            )
        raise ApplicationError(
            message or "execution failed",
            outcome,
            type=PluginErrorCode.ExecutionFailed.value,
            non_retryable=True,
        )
    workflow.upsert_memo({OUTCOME_MEMO_KEY: outcome})
    raise asyncio.CancelledError("execution cancelled")


def _fit(outcome: ExecutionOutcome) -> ExecutionOutcome:
    """Keep the outcome under the payload limit: drop per-node results first, then all but
    the last events, then the results themselves (each step marks it truncated).

    The outcome returned is sealed (:meth:`ExecutionOutcome.sealed_size`): the form measured
    is the form the data converter writes, computed once."""
    if outcome.sealed_size() <= MAX_PAYLOAD_BYTES:
        return outcome
    outcome.unseal()
    context = outcome.context.model_copy(deep=True)
    for state in context.node_states.values():
        state.pop("result", None)
    trimmed = ExecutionOutcome(
        context=context, events=outcome.events, truncated=True, format=outcome.format
    )
    if trimmed.sealed_size() <= MAX_PAYLOAD_BYTES:
        return trimmed
    trimmed.unseal()
    trimmed.events = outcome.events[-_KEPT_EVENTS:]
    if trimmed.sealed_size() <= MAX_PAYLOAD_BYTES:
        return trimmed
    trimmed.unseal()
    context.execution_data.pop("results", None)
    context.error_messages.append("results were too large to keep with the execution")
    if trimmed.sealed_size() <= MAX_PAYLOAD_BYTES:
        return trimmed
    trimmed.unseal()
    # Very large graphs: keep the states that explain the end (failed, cancelled) only.
    context.node_states = {
        node_id: state
        for node_id, state in context.node_states.items()
        if state.get("status") in ("failed", "cancelled")
    }
    context.error_messages.append("per-node states of finished nodes were not kept")
    trimmed.events = outcome.events[-_KEPT_EVENTS // 10 :]
    return trimmed


def _outcome_format() -> int:
    """The form the ended run's outcome is written in (COMPACT_OUTCOME_PATCH)."""
    return OUTCOME_FORMAT if workflow.patched(COMPACT_OUTCOME_PATCH) else 1


def _may_compensate() -> bool:
    """Run the compensations of a failed or cancelled batch run? A new run marks its history
    when it begins them (COMPENSATION_PATCH)."""
    return workflow.patched(COMPENSATION_PATCH)


def _map_entry_taken() -> bool:
    """A finished map's entry edges failed on the splitter's summary: resolve them as taken
    (their targets ran per item)? Runs from before MAP_ENTRY_PATCH failed the map there."""
    return workflow.patched(MAP_ENTRY_PATCH)


def _unroutable_fails_pass() -> bool:
    """An event its pass cannot route: fail that pass, counted and reported? Runs from
    before UNROUTABLE_EVENT_PATCH lost the pass and its slot of max_concurrent_events."""
    return workflow.patched(UNROUTABLE_EVENT_PATCH)


def _meter_conditions() -> bool:
    """Meter this condition's evaluation? A new run marks its history at its first
    condition; replaying a history from before the meter answers no."""
    return workflow.patched(CONDITION_METER_PATCH)
