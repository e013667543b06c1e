"""Compensation (sagas): which completed nodes are undone when a batch execution fails or is
cancelled, in what order, with what, and how it is reported. Pure: the interpreter drives
it with its node runner, unit tests with fakes.

Semantics:

* **Which nodes**: the nodes of this execution's own graph that *completed by running their
  plugin* in it and name a ``compensation``
  (:class:`~engine.language.models.NodeCompensation`): nodes that completed on an error
  route included (they ran). Not compensated: a node that failed (also when an error route
  or ``optional`` handled its failure: it did not complete), was skipped or cancelled, a node
  an operator completed with ``skip_node`` (its plugin never ran), nodes inside a Splitter's
  map (registration refuses compensations there; the Splitter's own compensation receives
  the map's input and output), and nodes inside a sub-workflow: a child execution
  compensates its own nodes when *it* fails or is cancelled; once it has completed, the
  parent's ``subworkflow`` node may name a compensation of its own.
* **Order**: reverse order of completion, one at a time (a compensation starts when the one
  before it has ended). In Parallel mode, "completion" is the order in which the run recorded
  the nodes as completed.
* **What a compensation receives**: as its inputs ``{"node_id": ..., "input": <the node's
  inputs>, "output": <the node's output>, "reason": "failed" | "cancelled", "error": <why
  the execution failed, or null>}``; as its configuration, its own (merged over
  ``global_configuration`` like a node's), with its own retries and timeouts.
* **When**: after the run has stopped (running nodes cancelled and ended), before it ends:
  the events ``compensation_started``, ``compensation_completed`` and
  ``compensation_failed`` come before ``workflow_failed`` or ``workflow_cancelled``, and
  the execution shows ``running`` meanwhile. A cancellation that arrives while
  compensations run does not interrupt them (the interpreter shields them); a run that was
  failing still ends failed, and its compensation summary says ``cancel_requested: true``.
* **A compensation that fails** (its retries used up) is reported (``compensation_failed``,
  its node's ``compensation.status`` is ``failed``) and the next one still runs. The
  execution's first error message stays the original failure (or ``execution was
  cancelled``); one message per failed compensation follows it.
* **Across continue-as-new**: the nodes to compensate travel with the run's state
  (:attr:`~engine.runtime.contracts.BatchRunState.compensable`), with their inputs and
  outputs. Compensations themselves run in the Temporal run that failed.
* **Retries**: an execution whose compensations ran is not retried
  (:func:`retry_refusal`): its completed nodes were undone, so going on from them would be
  wrong. Start a new execution instead. (A retried execution's nodes kept from the earlier
  run therefore never had a compensation to run.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine.language.models import (
    PluginWorkflow,
    WorkflowEventType,
    WorkflowExecutionContext,
)
from engine.language.options import node_options, plugin_config
from engine.runtime.lifecycle import Emit
from engine.runtime.node_call import NodeCall, NodeFailure, NodeRunner

EventType = WorkflowEventType
# Where an execution's context reports its compensations (execution_data[...]).
SUMMARY_KEY = "compensation"
# Characters of a compensation's error kept in its node's state.
_ERROR_CHARS = 2000


class CompensationStatus(StrEnum):
    """Where one node's compensation is."""

    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"


@dataclass(slots=True)
class _Record:
    node_id: str
    inputs: dict[str, Any]
    output: dict[str, Any]
    status: CompensationStatus = CompensationStatus.pending
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None


def compensation_order(completed: list[str]) -> list[str]:
    """The order compensations run in, given the compensable nodes in order of completion."""
    return list(reversed(completed))


class Saga:
    """The compensations of one batch run: it remembers compensable nodes as they complete
    and, when asked, runs their compensations (see the module docstring)."""

    def __init__(
        self,
        workflow: PluginWorkflow,
        *,
        execution_id: str,
        clock: Callable[[], datetime],
        emit: Emit,
    ) -> None:
        self._workflow = workflow
        self._compensations = {
            node.node_id: node.compensation
            for node in workflow.nodes
            if node.compensation is not None
        }
        self._names = {node.node_id: node.name for node in workflow.nodes}
        self._execution_id = execution_id
        self._clock = clock
        self._emit = emit
        self._records: dict[str, _Record] = {}  # in order of completion
        self._reason = ""
        self._running = False
        # A cancellation asked for while compensations ran (they ran on): the summary says so.
        self.cancel_requested = False

    # -- while the run goes on ----------------------------------------------------------

    def compensates(self, node_id: str) -> bool:
        """Does ``node_id`` name a compensation?"""
        return node_id in self._compensations

    def remember(self, node_id: str, inputs: dict[str, Any], output: dict[str, Any]) -> None:
        """``node_id`` completed by running its plugin with ``inputs``: compensate it if the
        run fails (nodes without a compensation are ignored)."""
        if self.compensates(node_id):
            self._records.pop(node_id, None)  # a node completes once; keep the latest order
            self._records[node_id] = _Record(node_id, inputs, output)

    def carry(self) -> list[dict[str, Any]]:
        """What the run carries across continue-as-new (taken before any compensation)."""
        return [
            {"node_id": record.node_id, "input": record.inputs, "output": record.output}
            for record in self._records.values()
        ]

    def restore(self, carried: list[dict[str, Any]]) -> None:
        """Take back what :meth:`carry` gave."""
        for item in carried:
            node_id = str(item["node_id"])
            self._records[node_id] = _Record(node_id, item["input"], item["output"])

    # -- reporting ----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Have compensations begun (they then run to their end)?"""
        return bool(self._reason)

    @property
    def running(self) -> bool:
        return self._running

    def pending_order(self) -> list[str]:
        """The nodes whose compensation would run now, in the order they would run."""
        return compensation_order(
            [n for n, r in self._records.items() if r.status is CompensationStatus.pending]
        )

    def node_state(self, node_id: str) -> dict[str, Any] | None:
        """A node's compensation as its state shows it, once compensations have begun."""
        record = self._records.get(node_id)
        if record is None or not self.started:
            return None
        state: dict[str, Any] = {
            "status": record.status.value,
            "plugin_id": self._compensations[node_id].plugin_id,
            "attempts": record.attempts,
            "started_at": record.started_at.isoformat() if record.started_at else None,
            "completed_at": record.completed_at.isoformat() if record.completed_at else None,
        }
        if record.error is not None:
            state["error"] = record.error
        return state

    def summary(self) -> dict[str, Any] | None:
        """What ``execution_data["compensation"]`` shows once compensations have begun:
        ``status`` (running, completed: all compensated, failed: some could not be),
        ``reason`` (failed or cancelled), the compensated ``nodes`` in the order they ran,
        those whose compensation ``failed``, and ``cancel_requested: true`` when a
        cancellation was asked for while they ran (it did not stop them)."""
        if not self.started:
            return None
        order = compensation_order(list(self._records))
        failed = [n for n in order if self._records[n].status is CompensationStatus.failed]
        status = "running" if self._running else ("failed" if failed else "completed")
        summary: dict[str, Any] = {
            "status": status,
            "reason": self._reason,
            "nodes": order,
            "failed": failed,
        }
        if self.cancel_requested:
            summary["cancel_requested"] = True
        return summary

    def failure_messages(self) -> list[str]:
        """One message per compensation that failed, in the order they ran."""
        messages = []
        for node_id in compensation_order(list(self._records)):
            record = self._records[node_id]
            if record.status is CompensationStatus.failed:
                messages.append(f"compensation of node '{node_id}' failed: {record.error}")
        return messages

    # -- compensating -------------------------------------------------------------------

    async def run(self, runner: NodeRunner, *, reason: str, error: str | None) -> None:
        """Run the pending compensations, in reverse order of completion, to their end
        (``reason``: "failed" or "cancelled"; ``error``: why the execution failed). A
        compensation's failure is recorded and the next one runs."""
        self._reason = reason
        self._running = True
        try:
            for node_id in self.pending_order():
                await self._compensate(self._records[node_id], runner, reason, error)
        finally:
            self._running = False

    async def _compensate(
        self, record: _Record, runner: NodeRunner, reason: str, error: str | None
    ) -> None:
        compensation = self._compensations[record.node_id]
        record.status = CompensationStatus.running
        record.started_at = self._clock()
        details = {"plugin_id": compensation.plugin_id}
        self._emit(EventType.compensation_started, node_id=record.node_id, details=details)
        try:
            call = self._call(record, reason, error)
            success = await runner(call)
        except NodeFailure as failure:
            record.attempts += failure.attempts
            self._failed(record, f"{failure.error_type}: {failure.message}")
            return
        except ValueError as exc:  # a configuration registration would have refused
            self._failed(record, f"invalid configuration: {exc}")
            return
        except asyncio.CancelledError:  # only if the runner itself was cancelled
            self._failed(record, "cancelled")
            raise
        record.attempts += success.attempts
        record.status = CompensationStatus.completed
        record.completed_at = self._clock()
        self._emit(
            EventType.compensation_completed,
            node_id=record.node_id,
            details={**details, "attempts": record.attempts},
        )

    def _failed(self, record: _Record, message: str) -> None:
        plugin_id = self._compensations[record.node_id].plugin_id
        attempts = f"{record.attempts} attempt{'s' if record.attempts != 1 else ''}"
        record.status = CompensationStatus.failed
        record.completed_at = self._clock()
        record.error = f"plugin '{plugin_id}' failed after {attempts}: {message}"[:_ERROR_CHARS]
        self._emit(
            EventType.compensation_failed,
            node_id=record.node_id,
            error=record.error,
            details={"plugin_id": plugin_id, "attempts": record.attempts},
        )

    def _call(self, record: _Record, reason: str, error: str | None) -> NodeCall:
        compensation = self._compensations[record.node_id]
        global_config = self._workflow.global_configuration
        return NodeCall(
            execution_id=self._execution_id,
            workflow_id=self._workflow.workflow_id,
            node_id=record.node_id,
            node_name=self._names.get(record.node_id, ""),
            plugin_id=compensation.plugin_id,
            inputs={
                "node_id": record.node_id,
                "input": record.inputs,
                "output": record.output,
                "reason": reason,
                "error": error,
            },
            config=plugin_config(global_config, compensation.configuration),
            options=node_options(global_config, compensation.configuration),
            compensation=True,
        )


async def shielded(work: asyncio.Task[None]) -> bool:
    """Await ``work`` to its end even if the awaiting task is cancelled meanwhile (Temporal
    cancels a workflow's main task on a cancellation request: compensations must not stop).
    Returns whether a cancellation arrived while waiting."""
    interrupted = False
    while True:
        try:
            await asyncio.shield(work)
            return interrupted
        except asyncio.CancelledError:
            if work.done():
                work.result()  # its own error, if any
                return True
            interrupted = True


def retry_refusal(execution_id: str, context: WorkflowExecutionContext) -> str | None:
    """Why an ended execution cannot be retried because of its compensations, or None."""
    summary = context.execution_data.get(SUMMARY_KEY)
    if not isinstance(summary, dict):
        return None
    nodes = [str(n) for n in summary.get("nodes") or []]
    shown = ", ".join(f"'{n}'" for n in nodes[:10]) + (" ..." if len(nodes) > 10 else "")
    return (
        f"cannot retry execution '{execution_id}': it ran the compensations of its completed "
        f"nodes ({shown}; {summary.get('status', 'unknown')}), so what they did was undone; "
        "start a new execution with execute_workflow"
    )
