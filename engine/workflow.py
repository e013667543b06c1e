"""Temporal glue for one execution: the generic interpreter workflow.

Every registered definition runs through this one workflow type. It adapts the pure
:class:`~engine.interpreter.Interpreter` to Temporal:

* nodes run as the generic node activity, called by name (this module imports no plugin
  code), with the node id as activity id and ``node: plugin`` as its summary in Temporal UI;
* ``pause`` and ``resume`` are updates whose validators reject invalid transitions (a rejected
  update writes nothing to history); cancellation is Temporal's own, so the UI and CLI cancel
  buttons work too;
* ``status`` and ``events`` are queries;
* the run ends the way Temporal shows it: Completed with an :class:`ExecutionOutcome`,
  Failed with the outcome in the failure's details, or Canceled with the outcome in the memo
  (Temporal stores no result for a cancelled run, and a closed run must be readable with no
  worker running).
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from engine.contracts import (
        EXECUTION_WORKFLOW,
        MAX_PAYLOAD_BYTES,
        NODE_ACTIVITY,
        EventsPage,
        ExecutionInput,
        ExecutionOutcome,
        NodeActivityInput,
        NodeActivityResult,
    )
    from engine.errors import PluginError, PluginErrorCode
    from engine.interpreter import Interpreter, NodeCall, NodeFailure, NodeSuccess
    from engine.models import WorkflowExecutionContext, WorkflowExecutionStatus
    from engine.options import NodeOptions
    from engine.validation import compile_workflow

OUTCOME_MEMO_KEY = "outcome"
# Events an ended run keeps when all of them would not fit in its outcome.
_KEPT_EVENTS = 2000
Status = WorkflowExecutionStatus


@workflow.defn(name=EXECUTION_WORKFLOW)
class PluginWorkflowExecution:
    """Interprets one execution of a registered :class:`~engine.models.PluginWorkflow`."""

    @workflow.init
    def __init__(self, params: ExecutionInput) -> None:
        self._interpreter: Interpreter | None = None
        self._setup_error: PluginError | None = None
        try:
            graph = compile_workflow(params.workflow)
            self._interpreter = Interpreter(
                graph,
                execution_id=workflow.info().workflow_id,
                input_data=params.input_data,
                runner=self._run_node,
                clock=workflow.now,
            )
        except PluginError as exc:
            self._setup_error = exc

    @workflow.run
    async def run(self, params: ExecutionInput) -> ExecutionOutcome:
        if self._interpreter is None:
            error = self._setup_error
            assert error is not None
            raise ApplicationError(error.message, type=error.code.value, non_retryable=True)
        status = await self._interpreter.run()
        await workflow.wait_condition(workflow.all_handlers_finished)
        outcome = _fit(
            ExecutionOutcome(
                context=self._interpreter.context(), events=self._interpreter.stored_events()
            )
        )
        if status is Status.Completed:
            return outcome
        if status is Status.Failed:
            message = outcome.context.error_messages[0] if outcome.context.error_messages else ""
            raise ApplicationError(
                message or "execution failed",
                outcome,
                type=PluginErrorCode.ExecutionFailed.value,
                non_retryable=True,
            )
        workflow.upsert_memo({OUTCOME_MEMO_KEY: outcome})
        raise asyncio.CancelledError("execution cancelled")

    # -- messages --------------------------------------------------------------------------

    @workflow.update
    def pause(self) -> None:
        """Stop starting nodes; running nodes finish."""
        self._require().pause()

    @pause.validator
    def _validate_pause(self) -> None:
        self._validate("pause")

    @workflow.update
    def resume(self) -> None:
        """Start nodes again."""
        self._require().resume()

    @resume.validator
    def _validate_resume(self) -> None:
        self._validate("resume")

    @workflow.query
    def status(self) -> WorkflowExecutionContext:
        """The execution context as of now."""
        return self._require().context()

    @workflow.query
    def events(self, after: int) -> EventsPage:
        """Events with a sequence number above ``after``."""
        interpreter = self._require()
        return EventsPage(events=interpreter.events(after), last_sequence=interpreter.event_count)

    # -- internals -------------------------------------------------------------------------

    def _require(self) -> Interpreter:
        if self._interpreter is None:
            message = self._setup_error.message if self._setup_error else "not initialised"
            raise ApplicationError(message, type=PluginErrorCode.InvalidState.value)
        return self._interpreter

    def _validate(self, action: str) -> None:
        try:
            self._require().check_transition(action)
        except PluginError as exc:
            raise ApplicationError(exc.message, type=exc.code.value, non_retryable=True) from None

    async def _run_node(self, call: NodeCall) -> NodeSuccess:
        request = NodeActivityInput(
            execution_id=call.execution_id,
            workflow_id=call.workflow_id,
            node_id=call.node_id,
            node_name=call.node_name,
            plugin_id=call.plugin_id,
            inputs=call.inputs,
            config=call.config,
        )
        size = _json_size(request.inputs) + _json_size(request.config)
        if size > MAX_PAYLOAD_BYTES:
            raise NodeFailure(
                f"inputs and configuration of node '{call.node_id}' are {size:,} bytes of JSON; "
                f"the limit is {MAX_PAYLOAD_BYTES:,} bytes",
                error_type=PluginErrorCode.InvalidOutput.value,
                attempts=0,
            )
        options = call.options
        name = f" {call.node_name}" if call.node_name else ""
        try:
            result = await workflow.execute_activity(
                NODE_ACTIVITY,
                request,
                result_type=NodeActivityResult,
                activity_id=call.node_id,
                summary=f"{call.node_id}{name}: {call.plugin_id}",
                start_to_close_timeout=timedelta(seconds=options.timeout),
                heartbeat_timeout=timedelta(seconds=options.heartbeat_timeout),
                retry_policy=_retry_policy(options),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                # The activity acknowledged our cancellation: the node was cancelled.
                raise asyncio.CancelledError() from None
            raise _node_failure(err, options) from None
        return NodeSuccess(output=result.output, attempts=result.attempt)


def _retry_policy(options: NodeOptions) -> RetryPolicy:
    retry = options.retry
    return RetryPolicy(
        initial_interval=timedelta(seconds=retry.initial_interval),
        backoff_coefficient=retry.backoff_coefficient,
        maximum_interval=timedelta(seconds=max(retry.maximum_interval, retry.initial_interval)),
        maximum_attempts=retry.max_attempts,
        non_retryable_error_types=list(retry.non_retryable_errors) or None,
    )


def _node_failure(err: ActivityError, options: NodeOptions) -> NodeFailure:
    cause = err.cause
    exhausted = err.retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED
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
        kind = cause.type.name.title().replace("_", "") if cause.type else "Unknown"
        seconds = options.heartbeat_timeout if "Heartbeat" in kind else options.timeout
        return NodeFailure(
            f"attempt timed out ({kind}, {seconds:g}s)",
            error_type=f"{kind}Timeout",
            attempts=attempts,
        )
    message = str(cause) if cause is not None else str(err)
    return NodeFailure(message, error_type=type(cause or err).__name__, attempts=attempts)


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str))


def _fit(outcome: ExecutionOutcome) -> ExecutionOutcome:
    """Keep the outcome under the payload limit: drop per-node results first, then all but
    the last events, then the results themselves (each step marks it truncated)."""
    if len(outcome.model_dump_json()) <= MAX_PAYLOAD_BYTES:
        return outcome
    context = outcome.context.model_copy(deep=True)
    for state in context.node_states.values():
        state.pop("result", None)
    trimmed = ExecutionOutcome(context=context, events=outcome.events, truncated=True)
    if len(trimmed.model_dump_json()) <= MAX_PAYLOAD_BYTES:
        return trimmed
    trimmed.events = outcome.events[-_KEPT_EVENTS:]
    if len(trimmed.model_dump_json()) <= MAX_PAYLOAD_BYTES:
        return trimmed
    context.execution_data.pop("results", None)
    context.error_messages.append("results were too large to keep with the execution")
    if len(trimmed.model_dump_json()) <= MAX_PAYLOAD_BYTES:
        return trimmed
    # Very large graphs: keep the states that explain the end (failed, cancelled) only.
    context.node_states = {
        node_id: state
        for node_id, state in context.node_states.items()
        if state.get("status") in ("failed", "cancelled")
    }
    context.error_messages.append("per-node states of finished nodes were not kept")
    trimmed.events = outcome.events[-_KEPT_EVENTS // 10 :]
    return trimmed
