"""Temporal glue for running an execution's nodes: the Temporal side of the pure controllers'
:class:`~engine.runtime.controllers.Host`.

:class:`TemporalNodeRunner` is the :class:`~engine.runtime.interpreter.NodeRunner` of the
workflow (:mod:`engine.temporal.workflow`), and its source watcher and stream runner:

* a node runs as the generic node activity, called by name (this module imports no plugin
  code), with the node id (``#pass`` of an event, ``[item]`` of a map's item) as activity id
  and ``node: plugin`` as its summary in Temporal UI;
* the engine's own nodes (:mod:`engine.language.engine_nodes`) run in the workflow: ``wait``
  is a timer, ``approval`` waits for a person's decision (the workflow's ``decide`` update),
  ``subworkflow`` is a child execution, and a Splitter's map runs its items in this run or,
  beyond ``shard_size`` items, in child executions of ``shard_size`` items each;
* EventDriven sources and the Streaming stream are long activities; one whose worker is lost
  is started again from its last heartbeat without counting as a failed attempt, and one
  whose worker dies as it stops counts as stopped (behind the ``long-running-worker-loss``
  patch);
* pending activities and child workflows share the run's ``max_in_flight`` budget;
* light nodes (``execution: local``, or ``auto`` and a plugin the catalog marked light when
  the execution started) run the same node activity as a *local* activity, with the node's
  retry policy, the same output checks, blob offload and error mapping, but no heartbeats
  and a short attempt timeout (see :meth:`TemporalNodeRunner.local_turn` for how long runs
  of them yield their workflow task).

What it schedules, in which order and with which ids, is written in every run's history:
a change that would schedule otherwise for an old run goes behind ``workflow.patched``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from engine.base.errors import PluginError, PluginErrorCode
    from engine.language.engine_nodes import (
        AGGREGATE,
        APPROVAL,
        SPLIT,
        SUBWORKFLOW,
        WAIT,
        ApprovalConfig,
        SplitConfig,
        SubworkflowConfig,
        aggregate,
        is_engine_node,
        parse_config,
    )
    from engine.language.maps import (
        MapPlan,
        aggregate_items,
        map_plan,
        pick_items,
        split_batch_size,
    )
    from engine.language.models import (
        PluginWorkflow,
        WorkflowExecutionContext,
        WorkflowNodeType,
    )
    from engine.language.options import NodeOptions, RetrySettings, global_options, node_options
    from engine.language.small_json import is_small, json_bytes_bound
    from engine.runtime.contracts import (
        EXECUTION_WORKFLOW,
        MAX_PAYLOAD_BYTES,
        NODE_ACTIVITY,
        NODE_BATCH_ACTIVITY,
        RUN_STREAM_ACTIVITY,
        WATCH_SOURCE_ACTIVITY,
        ApprovalDecision,
        ExecutionInput,
        ExecutionOutcome,
        MapShard,
        NodeActivityResult,
        NodeBatchResult,
        StreamProgress,
        StreamRunInput,
        WatchSourceInput,
        lean_node_request,
    )
    from engine.runtime.event_run import EventRun
    from engine.runtime.interpreter import NodeCall, NodeFailure, NodeSuccess
    from engine.runtime.long_run import LongRun
    from engine.runtime.map_batch import BatchCall, ItemOutcome, run_batched_items
    from engine.runtime.map_run import MapOutcome, run_map_items
    from engine.runtime.node_state import key_node
    from engine.runtime.stream_run import StreamRun
    from engine.temporal.map_batches import (
        MAP_BATCH_PATCH,
        batch_activity_id,
        batch_request,
        batch_summary,
        batch_timeout,
        item_outcomes,
    )

IN_FLIGHT_PATCH = "in-flight-budget"
# Sources and streams survive lost workers without using up their retries (see
# _long_running_retry); without the patch, histories recorded before replay unchanged.
WORKER_LOSS_PATCH = "long-running-worker-loss"
# Sources and streams run for weeks: a year per attempt, heartbeats notice a dead worker.
_LONG_ACTIVITY = timedelta(days=365)
# Default retries of sources and streams: outages of over an hour before the run fails.
_SOURCE_RETRY = RetrySettings(max_attempts=100, initial_interval=1.0, maximum_interval=60.0)
# Temporal's names of the timeouts that mean a lost worker (a retry policy may list them as
# non-retryable: the timeout then comes back to the workflow instead of being retried).
_WORKER_LOSS_TIMEOUTS = ("TemporalTimeout:Heartbeat", "TemporalTimeout:StartToClose")
_LOST_WORKER = (TimeoutType.HEARTBEAT, TimeoutType.START_TO_CLOSE)
# Light nodes (see TemporalNodeRunner.local_turn): local nodes one workflow task runs at most,
# the timer that ends the task, and the longest retry backoff a worker waits out in the task
# (a longer one is a durable timer and the next attempt a new local activity).
LOCAL_NODES_PER_TASK = 200
_LOCAL_YIELD = timedelta(milliseconds=1)
_LOCAL_RETRY_THRESHOLD = timedelta(seconds=2)
# Light nodes whose workflow retries them, one local activity per attempt (see
# TemporalNodeRunner._run_light); without the patch, histories recorded before replay as
# they ran: one local activity with the node's retry policy.
LOCAL_RETRIES_PATCH = "light-node-retries"
_ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)
T = TypeVar("T")


class TemporalNodeRunner:
    """Runs the nodes of one execution on Temporal (see the module docstring). Calling it
    runs a node (:class:`~engine.runtime.interpreter.NodeRunner`); :meth:`watch_source` and
    :meth:`run_stream` run a long run's sources and stream.

    ``definition`` is the definition the execution started with, ``long_run`` gives the
    long run's controller (which holds the version it runs now) or None for a batch run or a
    map's shard, and ``meter_conditions`` is the workflow's answer to whether conditions are
    metered (for the conditions inside a map's body)."""

    def __init__(
        self,
        definition: PluginWorkflow,
        subworkflows: dict[str, PluginWorkflow],
        *,
        long_run: Callable[[], LongRun | None],
        meter_conditions: Callable[[], bool],
        light_plugins: Sequence[str] = (),
    ) -> None:
        self._definition = definition
        self._light = frozenset(light_plugins)  # membership only, never iterated
        self._local_task = -1  # history length of the workflow task running local nodes
        self._local_count = 0  # local nodes started in that workflow task
        self._local_yield: asyncio.Task[None] | None = None
        self._subworkflows = subworkflows
        self._long_run = long_run
        self._meter_conditions = meter_conditions
        self._activity_ids = 0
        self._approvals: dict[str, ApprovalDecision | None] = {}  # key -> decision once made
        self._children: dict[str, str] = {}  # node key -> child execution id
        self._slots: asyncio.Semaphore | None = None  # see in_flight

    # -- what the workflow's handlers ask ---------------------------------------------------

    @property
    def children(self) -> dict[str, str]:
        """The child execution each sub-workflow call started, by call key."""
        return self._children

    def annotate(self, context: WorkflowExecutionContext) -> None:
        """Add what only the runner knows to the ``status`` query's context: the nodes waiting
        for a decision (child executions are named by the controller's ``context``)."""
        waiting = sorted(key for key, decision in self._approvals.items() if decision is None)
        if waiting:
            context.execution_data["awaiting_approval"] = waiting

    def decide(self, decision: ApprovalDecision) -> None:
        """Take a person's decision for a node waiting in ``approval``."""
        self._approvals[self.approval_key(decision.node_id)] = decision

    def approval_key(self, node_id: str) -> str:
        """The key of the one approval ``node_id`` names (``node`` or ``node#pass``); refuses
        (ApplicationError) a node that waits for none, or in several passes."""
        waiting = [
            key
            for key, decision in self._approvals.items()
            if decision is None and key_node(key) == node_id
        ]
        if len(waiting) != 1:
            reason = (
                "is not waiting for approval"
                if not waiting
                else f"waits in {len(waiting)} passes; name one as node#pass: {', '.join(waiting)}"
            )
            raise ApplicationError(
                f"node '{node_id}' of execution '{workflow.info().workflow_id}' {reason}",
                type=PluginErrorCode.InvalidState.value,
                non_retryable=True,
            )
        return waiting[0]

    async def map_shard(self, definition: PluginWorkflow, shard: MapShard) -> MapOutcome:
        """Run the items of this execution, one shard of a parent's map."""
        if shard.batch_size is not None:
            return await run_batched_items(
                map_plan(definition, shard.splitter),
                shard.items,
                offset=shard.offset,
                execution_id=workflow.info().workflow_id,
                runner=self._run_batch,
                batch_size=shard.batch_size,
                max_concurrency=shard.max_concurrency,
                pass_id=shard.pass_id,
                meter_conditions=self._meter_conditions,
            )
        return await run_map_items(
            map_plan(definition, shard.splitter),
            shard.items,
            offset=shard.offset,
            execution_id=workflow.info().workflow_id,
            runner=self,
            clock=workflow.now,
            max_concurrency=shard.max_concurrency,
            pass_id=shard.pass_id,
            meter_conditions=self._meter_conditions,
        )

    def _current_definition(self) -> PluginWorkflow:
        long = self._long_run()
        return long.workflow if long is not None else self._definition

    @contextlib.asynccontextmanager
    async def in_flight(self) -> AsyncIterator[None]:
        """Hold one of the run's ``max_in_flight`` slots while an activity or child workflow
        is pending: however passes, maps and parallelism multiply, a run stays under
        Temporal's pending limits. FIFO, so waiting nodes start in the order they asked.
        Only a run that reaches the budget consults the patch (and so records its marker):
        histories recorded before it went past the budget without waiting, and still do."""
        if self._slots is None:
            long = self._long_run()
            definition = long.workflow if long is not None else self._definition
            sources = 0  # EventDriven watchers are pending activities all along
            if isinstance(long, EventRun):
                sources = sum(n.node_type is WorkflowNodeType.Source for n in definition.nodes)
            size = global_options(definition.global_configuration).max_in_flight - sources
            self._slots = asyncio.Semaphore(max(1, size))
        if self._slots.locked() and not workflow.patched(IN_FLIGHT_PATCH):
            yield
            return
        async with self._slots:
            yield

    def next_activity_id(self, prefix: str) -> str:
        """An activity id for a source, a stream or the workflow's read of its definition
        (one counter for all of them; nodes' activity ids are their keys)."""
        self._activity_ids += 1
        return f"{prefix}-{self._activity_ids}"

    async def watch_source(
        self, node_id: str, plugin_id: str, config: dict[str, Any], checkpoint: Any
    ) -> Any:
        long = self._long_run()
        assert isinstance(long, EventRun)
        node = long.workflow.node(node_id)
        options = _long_running_options(long.workflow, node.configuration if node else {})
        survives = workflow.patched(WORKER_LOSS_PATCH)
        reported = long.state.checkpoints.get(node_id)  # a checkpoint signal replaces it
        while True:
            stop = _StopWatch()
            try:
                return await stop.result(
                    workflow.start_activity(
                        WATCH_SOURCE_ACTIVITY,
                        WatchSourceInput(
                            execution_id=workflow.info().workflow_id,
                            workflow_id=long.workflow.workflow_id,
                            node_id=node_id,
                            plugin_id=plugin_id,
                            config=config,
                            checkpoint=checkpoint,
                        ),
                        activity_id=self.next_activity_id(f"{node_id}@source"),
                        summary=f"{node_id}: watch {plugin_id}",
                        start_to_close_timeout=_LONG_ACTIVITY,
                        heartbeat_timeout=timedelta(seconds=options.heartbeat_timeout),
                        retry_policy=_long_running_retry(options, survives),
                        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    ),
                    survives,
                )
            except ActivityError as err:
                lost = _settle_activity_error(err, options, survives)
                stopped = stop.requested or err.retry_state is RetryState.CANCEL_REQUESTED
            beat = lost.last_heartbeat_details
            checkpoint = beat[0] if beat else checkpoint
            if stopped:
                # Stopped (pause, new version, continue-as-new, cancellation) as its worker
                # died: it resumes where its last heartbeat got to, unless the checkpoint
                # signal of a graceful stop arrived first.
                if long.state.checkpoints.get(node_id) is reported:
                    long.record_checkpoint(node_id, checkpoint)
                raise asyncio.CancelledError()
            workflow.logger.warning(
                "event source %s lost its worker (%s); restarting it", node_id, lost.message
            )
            long.wake()  # each restart grows the history: time to continue as new?

    async def run_stream(self, call: StreamRunInput) -> StreamProgress:
        long = self._long_run()
        assert isinstance(long, StreamRun)
        node = long.workflow.node(call.source_node)
        options = _long_running_options(long.workflow, node.configuration if node else {})
        survives = workflow.patched(WORKER_LOSS_PATCH)
        while True:
            stop = _StopWatch()
            try:
                progress: StreamProgress = await stop.result(
                    workflow.start_activity(
                        RUN_STREAM_ACTIVITY,
                        call,
                        result_type=StreamProgress,
                        activity_id=self.next_activity_id("stream"),
                        summary=f"stream from {call.source_node} (v{call.workflow.version})",
                        start_to_close_timeout=_LONG_ACTIVITY,
                        heartbeat_timeout=timedelta(seconds=options.heartbeat_timeout),
                        retry_policy=_long_running_retry(options, survives),
                        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    ),
                    survives,
                )
                return progress
            except ActivityError as err:
                lost = _settle_activity_error(err, options, survives)
                stopped = stop.requested or err.retry_state is RetryState.CANCEL_REQUESTED
            _adopt_newer_progress(long, lost.last_heartbeat_details)
            if stopped:
                raise asyncio.CancelledError()  # stopped as its worker died; see above
            workflow.logger.warning("stream lost its worker (%s); restarting it", lost.message)
            long.wake()  # each restart grows the history: time to continue as new?
            call = call.model_copy(
                update={
                    "checkpoint": long.state.checkpoints.get(call.source_node),
                    "counters": long.state.counters,
                }
            )

    async def __call__(self, call: NodeCall) -> NodeSuccess:
        """Run one node: an engine node in the workflow, any other as the node activity (a
        compensation always as the activity, with ``@compensation`` after its node's key as
        activity id)."""
        if is_engine_node(call.plugin_id):
            if call.compensation:  # registration refuses it
                raise NodeFailure(
                    f"'{call.plugin_id}' is one of the engine's own nodes; a compensation runs "
                    "a plugin",
                    error_type=PluginErrorCode.InvalidWorkflowStructure.value,
                    attempts=0,
                )
            return await self._engine_node(call)
        # The lean form (contracts.lean_node_request): what the activity reads, no more.
        request = lean_node_request(
            call.execution_id,
            call.workflow_id,
            call.node_id,
            call.plugin_id,
            call.inputs,
            call.config,
        )
        size = _request_size(call.inputs, call.config)
        if size > MAX_PAYLOAD_BYTES:
            raise NodeFailure(
                f"inputs and configuration of node '{call.node_id}' are {size:,} bytes of JSON; "
                f"the limit is {MAX_PAYLOAD_BYTES:,} bytes",
                error_type=PluginErrorCode.InvalidOutput.value,
                attempts=0,
            )
        options = call.options
        name = f" {call.node_name}" if call.node_name else ""
        activity_id = call.key
        event = f" (event #{call.pass_id})" if call.pass_id else ""
        if call.compensation:  # no node id has "@"
            activity_id += "@compensation"
            event += " (compensation)"
        if call.item_key:
            activity_id += f"[{call.item_key}]"
            event += f" (item {call.item_key.rsplit(':', 1)[-1]})"
        summary = f"{call.node_id}{name}: {call.plugin_id}{event}"
        local = self.runs_locally(call)
        if local and options.retry.max_attempts > 1 and workflow.patched(LOCAL_RETRIES_PATCH):
            return await self._run_light(request, activity_id, f"{summary} (local)", options)
        try:
            if local:
                await self.local_turn()
                # Not a pending activity on the server: outside the in-flight budget.
                result = await workflow.execute_local_activity(
                    NODE_ACTIVITY,
                    request,
                    result_type=NodeActivityResult,
                    activity_id=activity_id,
                    summary=f"{summary} (local)",
                    start_to_close_timeout=timedelta(seconds=options.local_timeout),
                    retry_policy=_retry_policy(options),
                    local_retry_threshold=_LOCAL_RETRY_THRESHOLD,
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
            else:
                async with self.in_flight():
                    result = await workflow.execute_activity(
                        NODE_ACTIVITY,
                        request,
                        result_type=NodeActivityResult,
                        activity_id=activity_id,
                        summary=summary,
                        start_to_close_timeout=timedelta(seconds=options.timeout),
                        heartbeat_timeout=timedelta(seconds=options.heartbeat_timeout),
                        retry_policy=_retry_policy(options),
                        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                # The activity acknowledged our cancellation: the node was cancelled.
                raise asyncio.CancelledError() from None
            raise _node_failure(err, options, local=local) from None
        except FailureError as err:
            # A local activity's failure arrives as its cause alone, not wrapped in an
            # ActivityError (its timeouts and cancellation are wrapped; an activity's always).
            if not local:
                raise
            if isinstance(err, CancelledError):
                raise asyncio.CancelledError() from None
            raise _cause_failure(err, None, options, local=True) from None
        return NodeSuccess(output=result.output, attempts=result.attempt)

    # -- light nodes -------------------------------------------------------------------------

    async def _run_light(
        self, request: dict[str, Any], activity_id: str, summary: str, options: NodeOptions
    ) -> NodeSuccess:
        """Run a light node whose retries the workflow drives: each attempt is a local
        activity of its own (one attempt, the node's attempt number in its input), and the
        backoff between attempts a durable timer.

        Why not the local activity's own retry policy: sdk-core keeps an attempt's
        start-to-close timer after the attempt has failed, and when it fires it cancels the
        attempt running then (temporalio/sdk-rust#1454, seen with temporalio 1.35: a second
        attempt started 0.5 s after a failed first was cancelled 1.5 s into its 2 s
        timeout). A local activity of its own per attempt has its own timer; the stale one
        finds its attempt finished, and the SDK only warns. Cancellation and the errors read
        as for the local activity (:func:`_node_failure`), the decision to retry as Temporal
        makes it (:meth:`~engine.language.options.RetrySettings.delay_after`)."""
        attempt = 1
        while True:
            await self.local_turn()
            try:
                result = await workflow.execute_local_activity(
                    NODE_ACTIVITY,
                    {**request, "attempt": attempt},
                    result_type=NodeActivityResult,
                    activity_id=activity_id,
                    summary=summary if attempt == 1 else f"{summary} (attempt {attempt})",
                    start_to_close_timeout=timedelta(seconds=options.local_timeout),
                    retry_policy=_ONE_ATTEMPT,
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
                return NodeSuccess(output=result.output, attempts=attempt)
            except ActivityError as err:  # a timeout (or a cancellation) comes wrapped
                cause: BaseException | None = err.cause
                if isinstance(cause, CancelledError):
                    raise asyncio.CancelledError() from None
                failed = _node_failure(err, options, local=True)
            except FailureError as err:  # a local activity's failure: its cause alone
                if isinstance(err, CancelledError):
                    raise asyncio.CancelledError() from None
                cause = err
                failed = _cause_failure(err, None, options, local=True)
            failed.attempts = attempt
            # As Temporal decides: an application error unless marked so, a timeout, any
            # other failure is retried.
            retryable = not (isinstance(cause, ApplicationError) and cause.non_retryable)
            delay = options.retry.delay_after(attempt, failed.error_type, retryable)
            if delay is None:
                raise failed
            await workflow.sleep(delay)
            attempt += 1

    def runs_locally(self, call: NodeCall) -> bool:
        """Does this node run as a local activity? ``execution: local``, or ``auto`` and a
        plugin the catalog marked light when the execution started (recorded in its input:
        every replay decides the same)."""
        execution = call.options.execution
        return execution == "local" or (execution == "auto" and call.plugin_id in self._light)

    async def local_turn(self) -> None:
        """Wait until this workflow task may start one more local node.

        The SDK runs local activities inside the workflow task that scheduled them and
        completes the task only when none is running, so a chain of local nodes would run
        in one ever longer task: past the 10 s workflow task timeout the worker has to
        heartbeat it, and a worker lost meanwhile reruns every local node of the task (their
        results become durable only when the task completes). So a workflow task starts at
        most :data:`LOCAL_NODES_PER_TASK` local nodes; the next one waits for a 1 ms timer
        (shared by every node waiting), which ends the task once the local nodes under way
        return, and goes on in the next task. A task is told from the next by the history
        length (deterministic: replay sees the same), so local nodes that follow an activity
        node, whose task has completed, start a fresh count.

        The figure is a count, not seconds: the time local work takes is not deterministic,
        and the decision to yield must be (it writes a timer). Measured with
        ``python -m bench.bench_light --long-chain 2000`` (no-op light nodes, 2 cores at load
        average 7): 10.1 s in all, 10 workflow tasks of at most 1.13 s (5 ms a node, engine
        bookkeeping included), 9 timers, each one server round trip and 2 history events
        more (2,053 events in all). Without the timer the SDK keeps such a chain in one task
        until it has to heartbeat it (a hand-written 2,000-node local chain ran in two tasks
        here, the SDK warning past 5 s); with 200 a task keeps a margin of about 9x under
        the timeout on a loaded machine, and a lost worker reruns at most 200 nodes. A
        plugin that takes seconds is not light; with ``execution: local`` its attempt timeout
        is at most 60 s.
        """
        self._new_task_resets_count()
        while self._local_count >= LOCAL_NODES_PER_TASK:
            if self._local_yield is None:
                self._local_yield = asyncio.create_task(self._yield_task())
            await asyncio.shield(self._local_yield)
            self._new_task_resets_count()
        self._local_count += 1

    def _new_task_resets_count(self) -> None:
        length = workflow.info().get_current_history_length()
        if length != self._local_task:
            self._local_task = length
            self._local_count = 0

    async def _yield_task(self) -> None:
        try:
            await workflow.sleep(_LOCAL_YIELD, summary="light nodes: complete the workflow task")
        finally:
            self._local_yield = None

    # -- nodes the engine runs itself (engine.language.engine_nodes) ---------------------------

    async def _engine_node(self, call: NodeCall) -> NodeSuccess:
        # A PluginError here is the node's failure, never the workflow task's.
        try:
            return await self._engine_node_unchecked(call)
        except PluginError as exc:
            raise _config_failure(exc) from None

    async def _engine_node_unchecked(self, call: NodeCall) -> NodeSuccess:
        config = parse_config(call.plugin_id, call.node_id, call.config)
        key = call.key
        if call.plugin_id == AGGREGATE:
            return NodeSuccess(aggregate(call.inputs, config))
        if call.plugin_id == WAIT:
            seconds = (
                config.seconds
                if config.seconds is not None
                else (config.until - workflow.now()).total_seconds()
            )
            await workflow.sleep(max(0.0, seconds))
            return NodeSuccess(
                {"waited_seconds": max(0.0, seconds), "until": workflow.now().isoformat()}
            )
        if call.plugin_id == APPROVAL:
            return await self._approval(key, config)
        if call.plugin_id == SUBWORKFLOW:
            return await self._subworkflow(key, call, config)
        if call.plugin_id == SPLIT:
            return await self._map(call, config)
        raise NodeFailure(
            f"node '{call.node_id}': '{call.plugin_id}' runs as a Splitter's map, not alone",
            error_type=PluginErrorCode.InvalidWorkflowStructure.value,
        )

    async def _approval(self, key: str, config: ApprovalConfig) -> NodeSuccess:
        self._approvals[key] = None
        try:
            await workflow.wait_condition(
                lambda: self._approvals[key] is not None, timeout=config.expires_after
            )
        except builtins.TimeoutError:
            if config.on_timeout == "fail":
                raise NodeFailure(
                    f"nobody decided within {config.expires_after:g}s", error_type="ApprovalTimeout"
                ) from None
            return NodeSuccess(
                {
                    "approved": config.on_timeout == "approve",
                    "timed_out": True,
                    "by": "",
                    "comment": "",
                    "data": {},
                }
            )
        finally:
            decision = self._approvals.pop(key, None)
        assert decision is not None
        return NodeSuccess(
            {
                "approved": decision.approved,
                "timed_out": False,
                "by": decision.by,
                "comment": decision.comment,
                "data": decision.data,
            }
        )

    async def _run_batch(self, call: BatchCall) -> list[ItemOutcome]:
        """One batch of a batched map as the batch activity (:mod:`.map_batches`)."""
        options = call.options
        try:
            async with self.in_flight():
                result = await workflow.execute_activity(
                    NODE_BATCH_ACTIVITY,
                    batch_request(call),
                    result_type=NodeBatchResult,
                    activity_id=batch_activity_id(call),
                    summary=batch_summary(call),
                    start_to_close_timeout=batch_timeout(call),
                    heartbeat_timeout=timedelta(seconds=options.heartbeat_timeout),
                    retry_policy=_retry_policy(options),
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                raise asyncio.CancelledError() from None
            failure = _node_failure(err, options)  # the batch could not run: each item failed
            return [failure] * len(call.items)
        return item_outcomes(call, result)

    async def _map(self, call: NodeCall, config: SplitConfig) -> NodeSuccess:
        definition = self._current_definition()
        plan = map_plan(definition, call.node_id)
        items = pick_items(call.node_id, call.inputs, config.items)
        batch_size = split_batch_size(definition, call.node_id)
        if batch_size is not None and workflow.patched(MAP_BATCH_PATCH):
            if len(items) <= config.shard_size * batch_size:
                outcome = await run_batched_items(
                    plan,
                    items,
                    offset=0,
                    execution_id=workflow.info().workflow_id,
                    runner=self._run_batch,
                    batch_size=batch_size,
                    max_concurrency=config.max_concurrency,
                    pass_id=call.pass_id,
                    meter_conditions=self._meter_conditions,
                )
            else:
                outcome = await self._map_in_shards(
                    plan, items, config, call, batch_size=batch_size
                )
        elif len(items) <= config.shard_size:
            outcome = await run_map_items(
                plan,
                items,
                offset=0,
                execution_id=workflow.info().workflow_id,
                runner=self,
                clock=workflow.now,
                max_concurrency=config.max_concurrency,
                pass_id=call.pass_id,
                meter_conditions=self._meter_conditions,
            )
        else:
            outcome = await self._map_in_shards(plan, items, config, call)
        if outcome.failed > config.max_failures:
            first = outcome.errors[0]
            raise NodeFailure(
                f"{outcome.failed} of {len(items)} items failed (tolerated: "
                f"{config.max_failures}); item {first['index']}: {first['error']}",
                error_type="MapFailed",
            )
        aggregator = self._current_definition().node(plan.aggregator)
        assert aggregator is not None
        strategy = parse_config(AGGREGATE, plan.aggregator, aggregator.configuration).strategy
        return NodeSuccess(
            {"count": len(items), "failed": outcome.failed, "errors": outcome.errors[:100]},
            aggregated=aggregate_items(outcome.results, strategy),
            body_counts=outcome.counts,
        )

    async def _map_in_shards(
        self,
        plan: MapPlan,
        items: list[Any],
        config: SplitConfig,
        call: NodeCall,
        *,
        batch_size: int | None = None,
    ) -> MapOutcome:
        """Each shard of ``shard_size`` items (``shard_size`` batches of a batched map) runs
        as a child execution; as many shards run at once as ``max_concurrency`` items
        allow."""
        shard_items = config.shard_size * (batch_size or 1)
        per_shard = min(config.max_concurrency, shard_items)
        slots = asyncio.Semaphore(max(1, config.max_concurrency // per_shard))
        base = f"{workflow.info().workflow_id}/{call.node_id}"
        if call.pass_id:
            base += f"#{call.pass_id}"

        async def shard(offset: int) -> MapOutcome:
            chunk = items[offset : offset + shard_items]
            last = offset + len(chunk) - 1
            async with slots, self.in_flight():
                outcome = await workflow.execute_child_workflow(
                    EXECUTION_WORKFLOW,
                    ExecutionInput(
                        workflow=self._current_definition(),
                        subworkflows=self._subworkflows,
                        map_shard=MapShard(
                            splitter=plan.splitter,
                            items=chunk,
                            offset=offset,
                            max_concurrency=per_shard,
                            batch_size=batch_size,
                        ),
                        light_plugins=sorted(self._light),
                    ),
                    id=f"{base}-items-{offset}-{last}",
                    result_type=ExecutionOutcome,
                    parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                    cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                    static_summary=f"items {offset}-{last} of map {call.node_id}",
                )
            data = outcome.context.execution_data["map"]
            return MapOutcome(data["results"], data["errors"], data["counts"])

        shards = await asyncio.gather(
            *(shard(offset) for offset in range(0, len(items), shard_items))
        )
        counts: dict[str, dict[str, int]] = {}
        for part in shards:
            for node_id, node_counts in part.counts.items():
                total = counts.setdefault(node_id, dict.fromkeys(node_counts, 0))
                for name, value in node_counts.items():
                    total[name] = total.get(name, 0) + value
        return MapOutcome(
            [result for part in shards for result in part.results],
            [error for part in shards for error in part.errors],
            counts,
        )

    async def _subworkflow(
        self, key: str, call: NodeCall, config: SubworkflowConfig
    ) -> NodeSuccess:
        definition = self._subworkflows.get(config.workflow_id)
        if definition is None:
            raise NodeFailure(
                f"node '{call.node_id}': workflow '{config.workflow_id}' was not registered when "
                "this execution started",
                error_type=PluginErrorCode.WorkflowNotFound.value,
            )
        child_id = f"{workflow.info().workflow_id}/{key}"
        self._children[key] = child_id
        try:
            async with self.in_flight():
                outcome = await workflow.execute_child_workflow(
                    EXECUTION_WORKFLOW,
                    ExecutionInput(
                        workflow=definition,
                        input_data=call.inputs,
                        subworkflows=self._subworkflows,
                        light_plugins=sorted(self._light),
                    ),
                    id=child_id,
                    result_type=ExecutionOutcome,
                    parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                    cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                    memo={
                        "workflow_id": definition.workflow_id,
                        "workflow_version": definition.version,
                        "execution_mode": definition.execution_mode.value,
                        "parent_execution_id": workflow.info().workflow_id,
                    },
                    static_summary=(
                        f"{definition.workflow_id} (v{definition.version}) for node {call.node_id}"
                    ),
                )
        except ChildWorkflowError as err:
            if isinstance(err.cause, CancelledError):
                raise asyncio.CancelledError() from None
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise NodeFailure(
                f"child execution '{child_id}' failed: {message}",
                error_type=PluginErrorCode.ExecutionFailed.value,
            ) from None
        return NodeSuccess(
            {"results": outcome.context.execution_data.get("results", {}), "execution_id": child_id}
        )


def _config_failure(exc: PluginError) -> NodeFailure:
    return NodeFailure(exc.message, error_type=exc.code.value, attempts=1)


def _long_running_options(definition: PluginWorkflow, node_config: dict[str, Any]) -> NodeOptions:
    """Options of a source or stream activity: the node's, with long-running retry defaults
    unless a retry policy is configured (either way, lost workers do not count against it:
    see :func:`_long_running_retry`)."""
    options = node_options(definition.global_configuration, node_config)
    if "retry" in node_config or "retry" in definition.global_configuration:
        return options
    return options.model_copy(update={"retry": _SOURCE_RETRY})


def _retry_policy(options: NodeOptions) -> RetryPolicy:
    retry = options.retry
    return RetryPolicy(
        initial_interval=timedelta(seconds=retry.initial_interval),
        backoff_coefficient=retry.backoff_coefficient,
        maximum_interval=timedelta(seconds=max(retry.maximum_interval, retry.initial_interval)),
        maximum_attempts=retry.max_attempts,
        non_retryable_error_types=list(retry.non_retryable_errors) or None,
    )


class _StopWatch:
    """Awaits a source or stream activity, remembering whether the awaiting task was
    cancelled meanwhile (we asked the activity to stop). The SDK turns that cancellation
    into a cancellation request and hides it from the task; a timeout arriving after it
    (the worker died while stopping) must read as a stop, not as a lost worker to replace,
    even when the server timed the activity out before it recorded the request."""

    def __init__(self) -> None:
        self.requested = False

    async def result(self, handle: workflow.ActivityHandle[T], watch: bool) -> T:
        if not watch:  # histories recorded before the patch awaited the activity plainly
            return await handle
        while True:
            try:
                return await asyncio.shield(handle)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()  # handled here: the next await must not re-raise it
                self.requested = True
                if handle.done():
                    return handle.result()  # it ended as we were cancelled: take its end
                handle.cancel()  # the activity stops gracefully; wait for how it ended


def _long_running_retry(options: NodeOptions, survives: bool) -> RetryPolicy:
    """The retry policy of a source or stream activity. With ``survives`` a lost worker is
    not retried by Temporal (which would count it against ``max_attempts``): its timeout
    comes back to the workflow, which starts the activity again from its last heartbeat
    without counting it. Only plugin errors use up the attempts."""
    policy = _retry_policy(options)
    if survives:
        kept = list(policy.non_retryable_error_types or ())
        policy.non_retryable_error_types = [*kept, *_WORKER_LOSS_TIMEOUTS]
    return policy


def _settle_activity_error(
    err: ActivityError, options: NodeOptions, survives: bool
) -> TimeoutError:
    """What a source or stream activity's error means: a lost worker (returns its timeout),
    our own cancellation acknowledged (raises ``asyncio.CancelledError``), or the source
    failed for good (raises PluginError)."""
    if isinstance(err.cause, CancelledError):
        raise asyncio.CancelledError() from None
    cause = err.cause
    if survives and isinstance(cause, TimeoutError) and cause.type in _LOST_WORKER:
        return cause
    failure = _node_failure(err, options)
    raise PluginError(
        PluginErrorCode.PluginExecutionFailed,
        f"{failure.error_type}: {failure.message} (after {failure.attempts} attempts)",
    ) from None


def _adopt_newer_progress(long: StreamRun, details: Sequence[Any]) -> None:
    """Take the progress of a lost stream activity's last heartbeat if it is ahead of what
    its progress signals reported (each is a consistent pair of counters and checkpoint; the
    source's batch count tells which is newer)."""
    if not details:
        return
    try:
        beat = StreamProgress.model_validate(details[0])
    except ValueError:
        return
    source = long.source_node
    beaten = beat.counters.get(source)
    reported = long.state.counters.get(source)
    if beaten is not None and (reported is None or beaten.batches >= reported.batches):
        long.progress(beat)


def _node_failure(err: ActivityError, options: NodeOptions, *, local: bool = False) -> NodeFailure:
    if err.cause is None:
        exhausted = err.retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED
        attempts = options.retry.max_attempts if exhausted else 1
        return NodeFailure(str(err), error_type=type(err).__name__, attempts=attempts)
    return _cause_failure(err.cause, err.retry_state, options, local=local)


def _cause_failure(
    cause: BaseException, retry_state: RetryState | None, options: NodeOptions, *, local: bool
) -> NodeFailure:
    """The node's failure from what failed its last attempt."""
    exhausted = retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED
    attempts = options.retry.max_attempts if exhausted else 1
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details else None
        if isinstance(details, dict) and isinstance(details.get("attempt"), int):
            attempts = details["attempt"]
        return NodeFailure(
            cause.message,
            error_type=cause.type or "ApplicationError",
            attempts=attempts,
            retryable=not cause.non_retryable,
        )
    if isinstance(cause, TimeoutError):
        if local:
            # A local attempt's timeout is retried until the attempts run out (it comes with
            # no retry state): it reaches the workflow only then.
            attempts = options.retry.max_attempts
        kind = cause.type.name.title().replace("_", "") if cause.type else "Unknown"
        seconds = (
            options.heartbeat_timeout
            if "Heartbeat" in kind
            else options.local_timeout
            if local
            else options.timeout
        )
        return NodeFailure(
            f"attempt timed out ({kind}, {seconds:g}s)",
            error_type=f"{kind}Timeout",
            attempts=attempts,
        )
    return NodeFailure(str(cause), error_type=type(cause).__name__, attempts=attempts)


# Inputs and configuration this small are far below MAX_PAYLOAD_BYTES without being measured.
_SMALL_VALUES = 1024
_SMALL_CHARS = 65_536
assert json_bytes_bound(_SMALL_VALUES, _SMALL_CHARS) < MAX_PAYLOAD_BYTES


def _request_size(inputs: dict[str, Any], config: dict[str, Any]) -> int:
    """Bytes of JSON of a node call's inputs and configuration, or 0 when a cheap walk shows
    they are far below the limit (most calls: measuring is two encodings per node)."""
    if is_small([inputs, config], _SMALL_VALUES, _SMALL_CHARS):
        return 0
    return _json_size(inputs) + _json_size(config)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str))
