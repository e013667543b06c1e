"""Asking a definition's admission workflow (:mod:`engine.temporal.admission`) for a slot,
from a client or an activity. Each request starts the workflow if it is not running."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import PluginWorkflow
from engine.language.options import global_options
from engine.runtime.admission import AdmissionState
from engine.runtime.contracts import (
    ADMISSION_RELEASE_SIGNAL,
    ADMISSION_REQUEST_SIGNAL,
    ADMISSION_REQUEST_UPDATE,
    ADMISSION_WORKFLOW,
    SlotAnswer,
    SlotRelease,
    SlotRequest,
    admission_entity_id,
)
from engine.temporal.telemetry import entity_search_attributes
from engine.temporal.translation import from_failure, translate_errors

# How long an update may wait for the admission workflow's worker to answer.
_UPDATE_TIMEOUT = timedelta(seconds=10)
# How long a request is sent again while Temporal refuses it for too many updates in flight.
_BUSY_SECONDS = 30.0


def _summary(request: SlotRequest) -> str:
    return f"admission of {request.workflow_id} (max_concurrent_executions)"


async def queue_start(client: Client, task_queue: str, request: SlotRequest) -> None:
    """Queue a start (signal-with-start: needs no worker, keeps the order of requests)."""
    subject = f"workflow '{request.workflow_id}'"
    with translate_errors(subject):
        await client.start_workflow(
            ADMISSION_WORKFLOW,
            AdmissionState(workflow_id=request.workflow_id),
            start_signal=ADMISSION_REQUEST_SIGNAL,
            start_signal_args=[request],
            id=admission_entity_id(request.workflow_id, task_queue),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=entity_search_attributes(),
            static_summary=_summary(request),
        )


async def request_slot(client: Client, task_queue: str, request: SlotRequest) -> SlotAnswer:
    """Ask for a slot and wait for the answer (update-with-start).

    Raises:
        PluginError: ``ConcurrencyLimitReached`` (a client's request under ``reject`` with
            no slot free), ``WorkerUnavailable`` if no worker answers, ``Timeout`` if
            Temporal stays busy.
    """
    subject = f"workflow '{request.workflow_id}'"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _BUSY_SECONDS
    delay = 0.05
    while True:
        operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            ADMISSION_WORKFLOW,
            AdmissionState(workflow_id=request.workflow_id),
            id=admission_entity_id(request.workflow_id, task_queue),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=entity_search_attributes(),
            static_summary=_summary(request),
        )
        try:
            with translate_errors(subject):
                try:
                    answer: SlotAnswer = await client.execute_update_with_start_workflow(
                        ADMISSION_REQUEST_UPDATE,
                        request,
                        start_workflow_operation=operation,
                        result_type=SlotAnswer,
                        rpc_timeout=_UPDATE_TIMEOUT,
                    )
                    return answer
                except WorkflowUpdateFailedError as exc:
                    raise from_failure(exc.cause, subject) from None
                except WorkflowUpdateRPCTimeoutOrCancelledError:
                    raise PluginError(
                        PluginErrorCode.WorkerUnavailable,
                        f"{subject}: its admission workflow did not answer in time; is a worker "
                        "running on its task queue?",
                    ) from None
                except RPCError as exc:
                    if not _busy(exc):
                        raise
        except PluginError as exc:
            if exc.code is PluginErrorCode.ConcurrencyLimitReached:
                raise PluginError(exc.code, f"cannot start: {exc.message}") from None
            raise
        if loop.time() + delay > deadline:
            raise PluginError(
                PluginErrorCode.Timeout,
                f"{subject}: its admission workflow stayed busy for {_BUSY_SECONDS:g}s",
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _busy(exc: RPCError) -> bool:
    """Temporal refused the update for too many in flight (or in all: the workflow is about to
    continue as new)."""
    if exc.status is RPCStatusCode.RESOURCE_EXHAUSTED:
        return True
    return exc.status is RPCStatusCode.FAILED_PRECONDITION and "limit on the total" in exc.message


async def reserve_slot(
    client: Client, task_queue: str, definition: PluginWorkflow, execution_id: str
) -> None:
    """Before a client starts an execution of a definition with ``max_concurrent_executions``:
    queue the start (overflow ``queue``), or take a slot or refuse (overflow ``reject``).
    Nothing for a definition without a limit.

    Raises:
        PluginError: ``ConcurrencyLimitReached`` under ``reject`` with no slot free.
    """
    options = global_options(definition.global_configuration)
    if options.max_concurrent_executions is None:
        return
    request = SlotRequest(
        workflow_id=definition.workflow_id,
        execution_id=execution_id,
        limit=options.max_concurrent_executions,
        overflow=options.overflow,
    )
    if options.overflow == "queue":
        await queue_start(client, task_queue, request)
    else:
        await request_slot(client, task_queue, request)


async def give_back(client: Client, task_queue: str, workflow_id: str, execution_id: str) -> None:
    """Free a reserved slot whose execution could not be started (best effort: an entry
    nobody claims is dropped after ``START_WINDOW`` anyway)."""
    handle = client.get_workflow_handle(admission_entity_id(workflow_id, task_queue))
    with contextlib.suppress(RPCError):
        await handle.signal(ADMISSION_RELEASE_SIGNAL, SlotRelease(execution_id=execution_id))
