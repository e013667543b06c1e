"""Reading and steering executions and registry entities from a client.

The orchestrator's methods are thin; the Temporal details live here:

* state of a running execution comes from its ``status`` query; state of an ended one from
  what the run stored (result, failure details or memo, see :mod:`engine.temporal.workflow`),
  because
  a query on a closed run hangs when no worker is running;
* the event stream long-polls the execution's history (the server answers as soon as anything
  happens) and reads new events with the ``events`` query, so it is push-driven, never a busy
  poll, and works from any process;
* Temporal exceptions become :class:`PluginError` in
  :func:`engine.temporal.translation.translate_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import HistoryEventFilterType
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.client import (
    WorkflowExecutionStatus as TemporalStatus,
)
from temporalio.common import QueryRejectCondition
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.service import RPCError, RPCStatusCode

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import (
    PluginWorkflow,
    WorkflowEvent,
    WorkflowEventType,
    WorkflowExecutionContext,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    find_json_problem,
)
from engine.language.modification import DefinitionChange
from engine.runtime.contracts import (
    BUSY,
    EXECUTION_WORKFLOW,
    SUBMIT_EVENTS_UPDATE,
    EventsPage,
    EventsSignal,
    ExecutionInput,
    ExecutionOutcome,
)
from engine.runtime.events import with_results
from engine.temporal.translation import from_failure, from_rpc, translate_errors

if TYPE_CHECKING:
    from engine.temporal.history_state import HistoryState

Code = PluginErrorCode
_LONG_POLL = timedelta(seconds=30)
_UNREGISTERED = "is not registered"
_LONG_RUNNING_MODE_VALUES = tuple(m.value for m in WorkflowExecutionMode if m.is_long_running)


def json_object(data: dict[str, Any] | None, max_bytes: int) -> dict[str, Any]:
    """Check that ``data`` is a JSON object of at most ``max_bytes`` and copy it: plain JSON
    as definitions hold it (:func:`engine.language.models.find_json_problem`: string keys, finite
    numbers, 64-bit integers, valid Unicode, nesting of at most ``MAX_JSON_DEPTH``).

    Raises:
        PluginError: ``InvalidInput`` naming the problem.
    """
    if data is None:
        return {}
    # Before encoding: the walk is iterative and stops early, so data that is deep, refers to
    # itself or shares its parts many times over is refused at once (every value takes at
    # least two bytes of JSON, so more than max_bytes / 2 of them cannot fit).
    if problem := find_json_problem(data, max_values=max_bytes // 2, path="input_data"):
        raise PluginError(Code.InvalidInput, problem)
    encoded = json.dumps(data, allow_nan=False)
    if len(encoded) > max_bytes:
        raise PluginError(
            Code.InvalidInput,
            f"input_data is {len(encoded):,} bytes of JSON; the limit is {max_bytes:,}",
        )
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded


# -- registry ----------------------------------------------------------------------------


async def query_definition(
    handle: WorkflowHandle[Any, Any], workflow_id: str, timeout: timedelta
) -> PluginWorkflow:
    with translate_errors(f"workflow '{workflow_id}'", Code.WorkflowNotFound, _UNREGISTERED):
        definition: PluginWorkflow = await handle.query(
            "definition",
            result_type=PluginWorkflow,
            reject_condition=QueryRejectCondition.NOT_OPEN,
            rpc_timeout=timeout,
        )
    return definition


async def update_definition(
    handle: WorkflowHandle[Any, Any],
    workflow_id: str,
    update: str,
    arg: DefinitionChange | None,
) -> PluginWorkflow | None:
    with translate_errors(f"workflow '{workflow_id}'", Code.WorkflowNotFound, _UNREGISTERED):
        if arg is None:
            await handle.execute_update(update)
            return None
        updated: PluginWorkflow = await handle.execute_update(
            update, arg, result_type=PluginWorkflow
        )
    return updated


# -- executions --------------------------------------------------------------------------


# How long a control request is retried while the run has too many updates in flight.
BUSY_TIMEOUT = 30.0

# Status and events of a running execution are asked of a worker first (cheap for the
# client); one that does not answer within this (none runs, or the last one just died) is
# replaced by replaying the run's history here (:mod:`engine.temporal.history_state`), which gives
# the same state as of the last history event.
WORKER_ANSWER_BUDGET = timedelta(seconds=5)


def _ask_worker_for(timeout: timedelta) -> timedelta:
    return min(timeout, WORKER_ANSWER_BUDGET)


async def describe(
    handle: WorkflowHandle[Any, Any], execution_id: str
) -> WorkflowExecutionDescription:
    """Describe an execution; ``ExecutionNotFound`` if it is not one of ours."""
    with translate_errors(f"execution '{execution_id}'"):
        description = await handle.describe()
    if description.workflow_type != EXECUTION_WORKFLOW:
        raise PluginError(
            Code.ExecutionNotFound,
            f"'{execution_id}' is a {description.workflow_type} workflow, not an execution",
        )
    return description


def status_name(status: TemporalStatus | None) -> str:
    """A Temporal run status in the engine's words ("cancelled", as everywhere else)."""
    if status is None:
        return "unknown"
    if status is TemporalStatus.CANCELED:
        return "cancelled"
    return status.name.lower().replace("_", " ")


async def update_execution(
    handle: WorkflowHandle[Any, Any],
    execution_id: str,
    name: str,
    arg: Any = None,
    busy_timeout: float = BUSY_TIMEOUT,
) -> None:
    """Send a control update (pause, resume, cancel, skip, approve). While Temporal refuses
    it because the run has too many updates in flight (``history.maxInFlightUpdates``,
    10 by default) or has taken all it may (``history.maxTotalUpdates``, 2,000: it then
    continues as new), it is sent again with backoff for up to ``busy_timeout`` seconds, then
    refused with ``Timeout``: never dropped silently."""
    subject = f"execution '{execution_id}'"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + busy_timeout
    delay = 0.05
    try:
        while not await _send_update(handle, subject, name, arg):
            if loop.time() + delay > deadline:
                raise PluginError(
                    Code.Timeout,
                    f"{subject} stayed busy for {busy_timeout:g}s: Temporal refused the "
                    f"{name} request because too many requests to it are in flight (or the run "
                    "took all the updates it may and has not continued as new); try again",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
    except PluginError as exc:
        if exc.code is not Code.ExecutionNotFound:
            raise
        # An update on an ended run is refused as "not found": tell the two cases apart.
        description = await describe(handle, execution_id)
        action = "approve" if name == "decide" else name
        raise PluginError(
            Code.InvalidState,
            f"cannot {action} {subject}: it has ended ({status_name(description.status)})",
        ) from None


async def _send_update(handle: WorkflowHandle[Any, Any], subject: str, name: str, arg: Any) -> bool:
    """Send one update; False if Temporal refused it for too many updates in flight."""
    with translate_errors(subject):
        try:
            if arg is None:
                await handle.execute_update(name)
            else:
                await handle.execute_update(name, arg)
        except RPCError as exc:
            if exc.status is RPCStatusCode.RESOURCE_EXHAUSTED or over_update_limit(exc):
                return False
            raise
    return True


def over_update_limit(exc: RPCError) -> bool:
    """Temporal refused an update because the run has taken all it may
    (``history.maxTotalUpdates``, 2,000 by default): the run is about to continue as new,
    and the next run takes the update."""
    return (
        exc.status is RPCStatusCode.FAILED_PRECONDITION
        and "limit on the total number" in exc.message
    )


async def submit_events(
    handle: WorkflowHandle[Any, Any], execution_id: str, batch: EventsSignal, timeout: float
) -> None:
    """Deliver events with the ``submit_events`` update, waiting (with backoff, up to
    ``timeout`` seconds) while the execution is busy: its validator refuses events, writing
    nothing to history, while the queue is full or the run is continuing as new, so bursts
    of clients cannot grow a history without bound.

    Raises:
        PluginError: ``InvalidState`` if it is not a running EventDriven execution;
            ``Timeout`` if it stays busy.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.05
    reason = ""
    while True:
        try:
            await handle.execute_update(SUBMIT_EVENTS_UPDATE, batch)
            return
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if not (isinstance(cause, ApplicationError) and cause.type == BUSY):
                raise from_failure(cause, f"execution '{execution_id}'") from None
            reason = cause.message
        except RPCError as exc:
            # Too many updates in flight, or the run closed (continued as new) before
            # accepting this one, which Temporal reports as aborted (UNAVAILABLE): try again
            # on the current run (events are deduplicated by id, so a resend is safe).
            if exc.status not in (
                RPCStatusCode.RESOURCE_EXHAUSTED,
                RPCStatusCode.NOT_FOUND,
                RPCStatusCode.UNAVAILABLE,
            ) and not over_update_limit(exc):
                raise from_rpc(exc, f"execution '{execution_id}'", Code.ExecutionNotFound) from None
            reason = exc.message
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            reason = "the update timed out"
        if loop.time() + delay > deadline:
            raise PluginError(
                Code.Timeout,
                f"execution '{execution_id}' did not accept events within {timeout:g}s: {reason}",
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


async def context_of(
    handle: WorkflowHandle[Any, Any], execution_id: str, timeout: timedelta
) -> WorkflowExecutionContext:
    description = await describe(handle, execution_id)
    if description.status is TemporalStatus.RUNNING:
        if description.history_length <= 2 and not _continued(description):
            return await _pending_context(handle, description)
        try:
            with translate_errors(f"execution '{execution_id}'"):
                context: WorkflowExecutionContext = await handle.query(
                    "status",
                    result_type=WorkflowExecutionContext,
                    reject_condition=QueryRejectCondition.NOT_OPEN,
                    rpc_timeout=_ask_worker_for(timeout),
                )
                return context
        except PluginError as exc:
            if exc.code is Code.WorkerUnavailable:
                return (await _replayed(handle, exc.message)).context
            if exc.code is not Code.ExecutionNotFound:
                raise
            description = await describe(handle, execution_id)  # it ended meanwhile
    return (await outcome_of(handle, description)).context


async def outcome_of(
    handle: WorkflowHandle[Any, Any], description: WorkflowExecutionDescription
) -> ExecutionOutcome:
    """What an ended execution stored about itself (or a reconstruction if it stored
    nothing, e.g. after a terminate)."""
    status = description.status
    if status is TemporalStatus.COMPLETED:
        return ExecutionOutcome.model_validate(await handle.result())
    if status is TemporalStatus.FAILED:
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            outcome = _outcome_in_failure(exc)
            if outcome is not None:
                return outcome
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            return await _synthesized(handle, description, WorkflowExecutionStatus.Failed, message)
    if status is TemporalStatus.CANCELED:
        memo = await description.memo_value("outcome", None, type_hint=ExecutionOutcome)
        if isinstance(memo, ExecutionOutcome):
            return memo
        return await _synthesized(
            handle, description, WorkflowExecutionStatus.Cancelled, "execution was cancelled"
        )
    reason = {
        TemporalStatus.TERMINATED: "execution was terminated in Temporal",
        TemporalStatus.TIMED_OUT: "execution timed out in Temporal",
    }.get(status or TemporalStatus.TERMINATED, f"execution ended as {status_name(status)}")
    return await _synthesized(handle, description, WorkflowExecutionStatus.Failed, reason)


def outcome_events(outcome: ExecutionOutcome) -> list[WorkflowEvent]:
    """An ended execution's events as they were live: a batch run stores its events without
    results and they are filled in from its context (a node completes once); a long-running
    run's events carry the result each pass produced (its context holds only the last one
    per node), so they are given as stored."""
    context = outcome.context
    if context.execution_data.get("execution_mode") in _LONG_RUNNING_MODE_VALUES:
        return list(outcome.events)
    return with_results(
        outcome.events,
        lambda node_id: context.node_states.get(node_id, {}).get("result"),
        lambda: context.execution_data.get("results"),
    )


def _continued(description: WorkflowExecutionDescription) -> bool:
    """True for a run that continues an earlier one (its state is in its input: ask it)."""
    info = description.raw_description.workflow_execution_info
    return bool(info.first_run_id) and info.first_run_id != description.run_id


async def _pending_context(
    handle: WorkflowHandle[Any, Any], description: WorkflowExecutionDescription
) -> WorkflowExecutionContext:
    """A context for a run no worker has picked up yet, from its start event's input."""
    params = await start_input(handle)
    # The controllers (and the CEL parser they compile with) load only when a read needs
    # them, so the CLI's reads start without them.
    from engine.runtime.pending import initial_context

    return initial_context(params, description.id, description.start_time)


async def start_input(handle: WorkflowHandle[Any, Any]) -> ExecutionInput:
    """The start argument of the execution's latest run, decoded by the handle's client
    (so it is decrypted when payload encryption is on)."""
    # The SDK keeps a handle's converter private; it is the one its own result() decodes with.
    converter = handle._data_converter
    with translate_errors(f"execution '{handle.id}'"):
        async for event in handle.fetch_history_events(page_size=1):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [params] = await converter.decode(payloads, [ExecutionInput])
            assert isinstance(params, ExecutionInput)
            return params
    raise PluginError(Code.ExecutionNotFound, f"execution '{handle.id}' has no history")


async def _synthesized(
    handle: WorkflowHandle[Any, Any],
    description: WorkflowExecutionDescription,
    status: WorkflowExecutionStatus,
    message: str,
) -> ExecutionOutcome:
    context = await _pending_context(handle, description)
    context.status = status
    context.end_time = description.close_time
    context.error_messages = [message]
    terminal = (
        WorkflowEventType.workflow_cancelled
        if status is WorkflowExecutionStatus.Cancelled
        else WorkflowEventType.workflow_failed
    )
    events = [
        WorkflowEvent(
            type=WorkflowEventType.workflow_started,
            execution_id=context.execution_id,
            workflow_id=context.workflow_id,
            sequence=1,
            timestamp=description.start_time,
        ),
        WorkflowEvent(
            type=terminal,
            execution_id=context.execution_id,
            workflow_id=context.workflow_id,
            sequence=2,
            timestamp=description.close_time or description.start_time,
            error=message,
        ),
    ]
    return ExecutionOutcome(context=context, events=events)


async def with_pending_attempt(
    handle: WorkflowHandle[Any, Any], node_id: str, state: dict[str, Any]
) -> dict[str, Any]:
    """Add the current attempt and last failure of a running node's activity."""
    with translate_errors(f"execution '{handle.id}'"):
        description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_id == node_id:
            state = dict(state)
            state["attempts"] = max(int(pending.attempt), 1)
            if pending.HasField("last_failure"):
                message = await _failure_message(description, pending.last_failure)
                if message:
                    state["last_error"] = message
            break
    return state


async def _failure_message(description: WorkflowExecutionDescription, failure: Failure) -> str:
    """A failure's message, decoded: with encryption on it is in the encrypted attributes."""
    if not failure.HasField("encoded_attributes"):
        return failure.message
    copy = Failure()
    copy.CopyFrom(failure)
    error = await description.data_converter.decode_failure(copy)
    return error.message if isinstance(error, FailureError) else str(error)


async def wait_closed(
    handle: WorkflowHandle[Any, Any], execution_id: str
) -> ExecutionOutcome | None:
    """Wait until the execution has ended, however it ended; return the outcome it stored
    in its result or failure, or None (cancelled, terminated) to read it elsewhere."""
    with translate_errors(f"execution '{execution_id}'"):
        try:
            return ExecutionOutcome.model_validate(await handle.result())
        except WorkflowFailureError as exc:
            return _outcome_in_failure(exc)


def _outcome_in_failure(exc: WorkflowFailureError) -> ExecutionOutcome | None:
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.details:
        with contextlib.suppress(ValueError, TypeError):
            return ExecutionOutcome.model_validate(cause.details[0])
    return None


async def follow_events(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    execution_id: str,
    after: int,
    timeout: timedelta,
) -> AsyncGenerator[WorkflowEvent, None]:
    """Yield events after ``after`` until the terminal one (see the module docstring)."""
    sequence = after
    token = b""
    run_id = ""
    while True:
        description = await describe(handle, execution_id)
        if description.run_id != run_id:
            run_id, token = description.run_id, b""  # continued as new: follow the new run
        if description.status is not TemporalStatus.RUNNING:
            outcome = await outcome_of(handle, description)
            for event in outcome_events(outcome):
                if event.sequence > sequence:
                    yield event
            return
        if description.history_length > 2 or _continued(description):
            try:
                with translate_errors(f"execution '{execution_id}'"):
                    page: EventsPage = await handle.query(
                        "events",
                        sequence,
                        result_type=EventsPage,
                        reject_condition=QueryRejectCondition.NOT_OPEN,
                        rpc_timeout=_ask_worker_for(timeout),
                    )
            except PluginError as exc:
                if exc.code is Code.WorkerUnavailable:
                    # No worker to ask: what the history holds now, then wait for it to grow.
                    page = (await _replayed(handle, exc.message, sequence)).events
                elif exc.code is Code.ExecutionNotFound:
                    continue  # ended between describe and query: read the outcome
                else:
                    raise
            for event in page.events:
                yield event
                sequence = event.sequence
                if event.type.is_terminal:
                    return
            if sequence < page.last_sequence:
                continue  # more than one page waiting
        token = await _wait_for_history(client, execution_id, token)


async def _wait_for_history(client: Client, execution_id: str, token: bytes) -> bytes:
    """Block until the execution's history grows past ``token``; return the new token."""
    request = GetWorkflowExecutionHistoryRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=execution_id),
        next_page_token=token,
        wait_new_event=True,
        maximum_page_size=1000,
        history_event_filter_type=HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT,
    )
    try:
        response = await client.workflow_service.get_workflow_execution_history(
            request, retry=False, timeout=_LONG_POLL
        )
    except RPCError as exc:
        if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return token
        raise from_rpc(exc, f"execution '{execution_id}'", Code.ExecutionNotFound) from None
    return bytes(response.next_page_token) or token


async def _replayed(
    handle: WorkflowHandle[Any, Any], reason: str, events_after: int = 0
) -> HistoryState:
    """:func:`engine.temporal.history_state.replayed_state`, loaded (with the workflow code it
    replays) only when no worker answers."""
    from engine.temporal.history_state import replayed_state

    return await replayed_state(handle, reason, events_after)
