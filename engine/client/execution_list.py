"""Listing executions of a task queue, active and ended, newest first: what the CLI's
``executions`` and the studio's executions page show.

Temporal's visibility store lists every run; an execution retried under the same id
(:meth:`~engine.client.orchestrator.AdvancedPluginOrchestrator.retry_execution`) or continued as new
has several, and only its newest run is its current state, so one row is kept per execution
id. Visibility lags a moment behind writes, so the running executions the registry of active
ones knows are added, and active rows are refined by a status read (paused, pending and
progress are not in visibility).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecution
from temporalio.client import WorkflowExecutionStatus as TemporalStatus

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import WorkflowExecutionContext
from engine.language.validation import check_id
from engine.runtime.contracts import EXECUTION_WORKFLOW
from engine.temporal.translation import translate_errors


class _Orchestrator(Protocol):
    """What listing needs of :class:`~engine.client.orchestrator.AdvancedPluginOrchestrator`."""

    @property
    def client(self) -> Client: ...

    @property
    def task_queue(self) -> str: ...

    async def get_active_executions(self) -> list[str]: ...

    async def get_execution_status(self, execution_id: str) -> WorkflowExecutionContext: ...


StatusFilter = Literal[
    "pending", "queued", "running", "paused", "completed", "failed", "cancelled", "terminated"
]
STATUS_FILTERS: tuple[str, ...] = StatusFilter.__args__  # type: ignore[attr-defined]

_TEMPORAL_STATUS = {
    TemporalStatus.RUNNING: "running",
    TemporalStatus.COMPLETED: "completed",
    TemporalStatus.FAILED: "failed",
    TemporalStatus.CANCELED: "cancelled",
    TemporalStatus.TERMINATED: "terminated",
    TemporalStatus.TIMED_OUT: "failed",
    TemporalStatus.CONTINUED_AS_NEW: "running",
}
# A status filter as a visibility query clause.
_STATUS_CLAUSE = {
    "running": "ExecutionStatus = 'Running'",
    "paused": "ExecutionStatus = 'Running'",
    "pending": "ExecutionStatus = 'Running'",
    "queued": "ExecutionStatus = 'Running'",
    "completed": "ExecutionStatus = 'Completed'",
    "failed": "(ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut')",
    "cancelled": "ExecutionStatus = 'Canceled'",
    "terminated": "ExecutionStatus = 'Terminated'",
}


class ExecutionSummary(BaseModel):
    """One execution in a listing."""

    execution_id: str
    workflow_id: str
    workflow_version: int | None = None
    execution_mode: str | None = None
    status: str
    start_time: str | None = None
    end_time: str | None = None
    active: bool
    progress: float | None = None
    error: dict[str, Any] | None = None  # the status read of an active one failed


async def list_executions(
    orch: _Orchestrator,
    workflow_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ExecutionSummary]:
    """Executions of ``orch``'s task queue, newest first: ``limit`` of them after skipping
    ``offset``, optionally of one definition and in one status.

    Raises:
        PluginError: ``InvalidInput`` for a filter that is not a workflow id or a status.
    """
    if workflow_id is not None and (reason := check_id("workflow_id", workflow_id)):
        raise PluginError(PluginErrorCode.InvalidInput, f"workflow_id filter: {reason}")
    if status is not None and status not in _STATUS_CLAUSE:
        raise PluginError(
            PluginErrorCode.InvalidInput,
            f"status filter '{status}' is not one of {', '.join(STATUS_FILTERS)}",
        )
    wanted = offset + limit
    prefix = f"{workflow_id}/run-" if workflow_id else ""
    clauses = [
        f"WorkflowType = '{EXECUTION_WORKFLOW}'",
        f"TaskQueue = '{orch.task_queue}'",
        "ExecutionStatus != 'ContinuedAsNew'",
    ]
    if prefix:
        clauses.append(f"WorkflowId STARTS_WITH '{prefix}'")
    if status:
        clauses.append(_STATUS_CLAUSE[status])
    rows = await _listed(orch, " AND ".join(clauses), wanted)
    if status in (None, "running", "paused", "pending", "queued"):
        for execution_id in await orch.get_active_executions():
            if execution_id.startswith(prefix) and execution_id not in rows:
                rows[execution_id] = ExecutionSummary(
                    execution_id=execution_id,
                    workflow_id=execution_id.split("/run-")[0],
                    status="running",
                    active=True,
                )

    async def refine(row: ExecutionSummary) -> None:
        if not row.active:
            return
        try:
            context = await orch.get_execution_status(row.execution_id)
        except PluginError as exc:
            row.error = {"code": exc.code.value, "message": exc.message}
            return
        row.status = context.status.value
        row.progress = context.progress
        row.active = not context.status.is_terminal
        if row.start_time is None and context.start_time is not None:
            row.start_time = context.start_time.isoformat()

    await asyncio.gather(*(refine(row) for row in rows.values()))
    result = [row for row in rows.values() if status is None or row.status == status]
    result.sort(key=lambda r: r.start_time or "9999", reverse=True)
    return result[offset:wanted]


_order_by_supported = True


async def _listed(orch: _Orchestrator, query: str, limit: int) -> dict[str, ExecutionSummary]:
    """The newest ``limit`` executions matching ``query``, one row per execution id.

    Newest first by start time: with ``ORDER BY StartTime DESC`` where the visibility store
    supports it (Elasticsearch); SQL stores (the dev server's SQLite) list running
    executions first, then by close time, which is close enough for "recent"."""
    global _order_by_supported
    rows: dict[str, ExecutionSummary] = {}
    ordered = f"{query} ORDER BY StartTime DESC" if _order_by_supported else query
    try:
        with translate_errors("listing executions"):
            async for execution in orch.client.list_workflows(ordered, limit=limit):
                if execution.id not in rows:  # a retried execution: its newest run only
                    rows[execution.id] = await _row(execution)
    except PluginError as exc:
        if not _order_by_supported or "ORDER BY" not in exc.message:
            raise
        _order_by_supported = False
        return await _listed(orch, query, limit)
    return rows


async def _row(execution: WorkflowExecution) -> ExecutionSummary:
    memo: Mapping[str, Any] = {}
    with contextlib.suppress(Exception):  # a memo this version cannot decode: show no extras
        memo = await execution.memo()
    status = _TEMPORAL_STATUS.get(execution.status, "running") if execution.status else "running"
    version = memo.get("workflow_version")
    return ExecutionSummary(
        execution_id=execution.id,
        workflow_id=str(memo.get("workflow_id") or execution.id.split("/run-")[0]),
        workflow_version=version if isinstance(version, int) else None,
        execution_mode=str(memo["execution_mode"]) if memo.get("execution_mode") else None,
        status=status,
        start_time=execution.start_time.isoformat() if execution.start_time else None,
        end_time=execution.close_time.isoformat() if execution.close_time else None,
        active=execution.status is TemporalStatus.RUNNING,
        progress=1.0 if status == "completed" else None,
    )
