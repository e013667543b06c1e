"""A retried batch run goes on from its earlier node records, also when it continues as new
on the way (no server: the interpreter with a fake runner, its state through JSON as Temporal
carries it)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from engine import WorkflowEventType, WorkflowExecutionStatus
from engine.language.validation import compile_workflow
from engine.runtime.contracts import BatchRunState, EarlierRecords
from engine.runtime.interpreter import Interpreter, NodeCall, NodeSuccess
from engine.runtime.lifecycle import ContinueAsNew
from tests.helpers.builders import chain

FIRST_START = datetime(2026, 1, 1, tzinfo=UTC)
RETRIED = datetime(2026, 1, 2, tzinfo=UTC)


def _earlier() -> EarlierRecords:
    """n0 completed, n1 failed after two attempts, n2 had one attempt and was cancelled (a
    record a parallel run leaves; here it is pending at the first continue-as-new), n3
    never ran."""
    at = FIRST_START.isoformat()
    return EarlierRecords(
        start_time=at,
        nodes={
            "n0": {"status": "completed", "attempts": 1, "started_at": at, "completed_at": at},
            "n1": {"status": "failed", "attempts": 2, "started_at": at, "completed_at": at},
            "n2": {"status": "cancelled", "attempts": 1, "started_at": at, "completed_at": at},
            "n3": {"status": "cancelled", "attempts": 0, "started_at": None},
        },
    )


async def _retry(every: int | None) -> tuple[Interpreter, int]:
    """Retry the chain (n1 runs again), continuing as new after every ``every`` calls."""
    ticks = itertools.count()
    calls: list[str] = []

    def clock() -> datetime:
        return RETRIED + timedelta(seconds=next(ticks))

    async def runner(call: NodeCall) -> NodeSuccess:
        calls.append(call.node_id)
        return NodeSuccess({"from": call.node_id}, attempts=1)

    graph = compile_workflow(chain("c", 4))
    carried: BatchRunState | None = None
    runs = 0
    while True:
        runs += 1
        started = len(calls)
        interpreter = Interpreter(
            graph,
            execution_id="exec-1",
            input_data={},
            runner=runner,
            clock=clock,
            completed={"n0": {"from": "n0"}} if carried is None else None,
            carried=carried,
            should_continue_as_new=(
                None if every is None else (lambda s=started: len(calls) - s >= every)
            ),
        )
        interpreter.continue_from(_earlier())  # ignored by a continued run: it carries it
        try:
            assert await interpreter.run() is WorkflowExecutionStatus.Completed
        except ContinueAsNew as over:
            carried = BatchRunState.model_validate_json(over.state.model_dump_json())
            continue
        assert calls == ["n1", "n2", "n3"]
        return interpreter, runs


def _records(interpreter: Interpreter) -> dict[str, Any]:
    context = interpreter.context()
    return {
        node_id: (state["status"], state["attempts"], state["started_at"])
        for node_id, state in context.node_states.items()
    }


async def test_a_retry_keeps_earlier_records_and_adds_new_attempts() -> None:
    interpreter, _ = await _retry(None)
    context = interpreter.context()
    at = FIRST_START.isoformat()
    assert context.start_time == FIRST_START
    assert context.progress == 1.0
    records = _records(interpreter)
    assert records["n0"] == ("completed", 1, at)
    assert records["n1"] == ("completed", 3, at)  # two before, one now; first started then
    assert records["n2"] == ("completed", 2, at)
    assert records["n3"][:2] == ("completed", 1)
    assert records["n3"][2] > at
    assert context.node_states["n0"]["completed_at"] == at
    progress = [
        e.progress
        for e in interpreter.events(0, 100)
        if e.type is WorkflowEventType.execution_progress_updated
    ]
    assert progress == [0.25, 0.5, 0.75, 1.0]  # from where the earlier runs got to


async def test_a_retry_that_continues_as_new_keeps_them_too() -> None:
    split, runs = await _retry(1)
    assert runs >= 3
    at = FIRST_START.isoformat()
    records = _records(split)
    assert records["n0"] == ("completed", 1, at)
    assert records["n1"] == ("completed", 3, at)
    assert records["n2"] == ("completed", 2, at)  # pending when the run first continued
    assert records["n3"][:2] == ("completed", 1)
    assert split.context().start_time == FIRST_START
    assert split.context().progress == 1.0
