"""The invariant of the long-running scenarios (EventDriven and Streaming executions).

For each execution, after the faults:

* it ends, within a deadline, in the state the scenario declared (a worker lost never fails
  it), and its event log is whole: kept events numbered without gaps, the terminal one last;
* no event is lost: an EventDriven execution received every event it queued and accounts
  for each as processed, failed or still queued; a stream's counters agree with its
  checkpoint (every item counted once);
* exactly once, by the ledger: no item was taken by two EventDriven passes, and every item a
  stream counted reached its sink; with ``items`` declared, items 0..items-1 were processed,
  each once by the counters (and, EventDriven, no others);
* in every Temporal run of its continue-as-new chain, every scheduled activity was closed
  and none completed twice; the caller replays all those histories.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHistory

from engine.client import executions
from engine.language.models import WorkflowExecutionMode, WorkflowExecutionStatus
from engine.runtime.contracts import ExecutionOutcome
from tests.chaos.invariants import TERMINAL_EVENTS, Verdict, history_problems
from tests.chaos.ledger import Ledger
from tests.helpers.histories import run_histories

Mode = WorkflowExecutionMode
Status = WorkflowExecutionStatus


@dataclass
class LongExpected:
    """What a scenario declares about one long-running execution.

    ``items``: all of items 0..items-1 were processed, each exactly once (None: the
    execution was cancelled part-way, so only "never twice, never lost" is checked).
    """

    mode: Mode
    status: Status
    items: int | None = None


async def check_long_runs(
    client: Client, ledger: Ledger, expected: dict[str, LongExpected], timeout: float = 90.0
) -> Verdict:
    """Check every execution of ``expected``; also fetches the histories of all its runs."""
    verdict = Verdict()
    checks = [_check(client, ledger, eid, want, timeout) for eid, want in expected.items()]
    for anomalies, histories, status in await asyncio.gather(*checks):
        verdict.anomalies += anomalies
        verdict.histories += histories
        verdict.statuses[status] += 1
    return verdict


async def _check(
    client: Client, ledger: Ledger, execution_id: str, want: LongExpected, timeout: float
) -> tuple[list[str], list[WorkflowHistory], str]:
    handle = client.get_workflow_handle(execution_id)
    try:
        await asyncio.wait_for(executions.wait_closed(handle, execution_id), timeout)
    except TimeoutError:
        return [f"{execution_id}: stuck, still running after {timeout:g}s"], [], "stuck"
    description = await executions.describe(handle, execution_id)
    outcome = await executions.outcome_of(handle, description)
    histories = await run_histories(client, execution_id)
    problems = _log_problems(outcome, want)
    if want.mode is Mode.EventDriven:
        problems += _event_problems(outcome, ledger.handlers(execution_id), want)
    else:
        problems += _stream_problems(outcome, ledger.handlers(execution_id), want)
    for history in histories:
        problems += history_problems(history, outcome)
    status = outcome.context.status.value
    return [f"{execution_id}: {problem}" for problem in problems], histories, status


def _log_problems(outcome: ExecutionOutcome, want: LongExpected) -> list[str]:
    context = outcome.context
    problems = []
    if context.status is not want.status:
        problems.append(
            f"ended {context.status.value}, expected {want.status.value} "
            f"({'; '.join(context.error_messages)})"
        )
    sequences = [event.sequence for event in outcome.events]
    if sequences and sequences != list(range(sequences[0], sequences[0] + len(sequences))):
        problems.append(f"event sequence has gaps or repeats: {sequences}")
    terminal = [i for i, event in enumerate(outcome.events) if event.type in TERMINAL_EVENTS]
    if terminal != [len(outcome.events) - 1]:
        problems.append(f"terminal events at {terminal} of {len(outcome.events)}")
    return problems


def _event_problems(
    outcome: ExecutionOutcome, handlers: dict[int, int], want: LongExpected
) -> list[str]:
    data = outcome.context.execution_data
    received, processed = data.get("events_received", 0), data.get("events_processed", 0)
    failed, queued = data.get("events_failed", 0), data.get("events_queued", 0)
    counts = f"received {received}, processed {processed}, failed {failed}, queued {queued}"
    problems = []
    if received != processed + failed + queued:
        problems.append(f"events lost: {counts}")
    twice = {item: n for item, n in handlers.items() if n > 1}
    if twice:
        problems.append(f"items taken by more than one pass: {twice}")
    if want.items is not None:
        if (received, processed, failed, queued) != (want.items, want.items, 0, 0):
            problems.append(f"expected {want.items} events processed once each: {counts}")
        missing = sorted(set(range(want.items)) - set(handlers))
        extra = sorted(set(handlers) - set(range(want.items)))
        if missing or extra:
            problems.append(f"items never taken: {missing[:20]}; unknown items: {extra[:20]}")
    elif not processed <= len(handlers) <= processed + failed:
        problems.append(f"{len(handlers)} items taken, but {counts}")
    return problems


def _stream_problems(
    outcome: ExecutionOutcome, handlers: dict[int, int], want: LongExpected
) -> list[str]:
    context = outcome.context
    definition_nodes = context.node_states
    source = next(
        (n for n, s in definition_nodes.items() if s.get("plugin_id") == "chaos_feed"), None
    )
    if source is None:
        return ["no chaos_feed source node in the outcome"]
    counters: dict[str, dict[str, Any]] = {
        node_id: state.get("counters", {}) for node_id, state in definition_nodes.items()
    }
    read = counters[source].get("items_out", 0)
    sunk = {n: c.get("items_in", 0) for n, c in counters.items() if n != source}
    checkpoint = context.execution_data.get("checkpoint")
    problems = []
    if int(checkpoint or 0) != read:
        problems.append(f"checkpoint {checkpoint} but {read} items counted as read")
    if any(count != read for count in sunk.values()):
        problems.append(f"{read} items read, sinks counted {sunk}")
    lost = sorted(set(range(read)) - set(handlers))
    if lost:
        problems.append(f"items counted but never written: {lost[:20]}")
    # Items past the end may have been written: a lost attempt read ahead of its last
    # checkpoint before the scenario made the source finite (at least once, as documented).
    if want.items is not None and read != want.items:
        problems.append(f"{read} items read, expected {want.items}")
    return problems
