"""The bookkeeping of ``max_concurrent_executions`` (engine.runtime.admission) and its settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.options import global_options
from engine.language.validation import validate_workflow
from engine.runtime.admission import (
    MAX_QUEUED,
    START_WINDOW,
    Admissions,
    AdmissionState,
    Liveness,
    Verdict,
)
from tests.helpers.builders import node, workflow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run_id(n: int) -> str:
    return f"wf/run-{n:016x}"


def admissions(limit: int = 2) -> Admissions:
    return Admissions(AdmissionState(workflow_id="wf", limit=limit))


def ask(a: Admissions, n: int, overflow: str = "queue", claim: bool = False) -> Verdict:
    return a.request(
        run_id(n),
        limit=a.state.limit,
        overflow=overflow,
        now=T0,
        claim=claim,  # type: ignore[arg-type]
    )


def test_slots_then_a_queue_in_order() -> None:
    a = admissions(2)
    assert [ask(a, n) for n in range(5)] == [Verdict.granted] * 2 + [Verdict.queued] * 3
    assert [e.execution_id for e in a.state.queue] == [run_id(2), run_id(3), run_id(4)]
    assert a.position(run_id(3)) == 2
    assert a.release(run_id(0))
    assert [e.execution_id for e in a.state.holders] == [run_id(1), run_id(2)]
    a.release(run_id(1))
    a.release(run_id(2))
    assert a.state.admitted == [1, 2, 3, 4, 5]  # tickets in the order of the requests
    assert a.state.granted == 5


def test_repeated_requests_get_the_first_answer() -> None:
    a = admissions(1)
    assert ask(a, 0) is Verdict.granted
    assert ask(a, 1) is Verdict.queued
    assert ask(a, 0) is Verdict.granted
    assert ask(a, 1) is Verdict.queued
    assert len(a.state.holders) + len(a.state.queue) == 2
    assert a.state.next_ticket == 3


def test_reject_refuses_without_changing_anything() -> None:
    a = admissions(2)
    assert ask(a, 0, "reject") is Verdict.granted
    assert ask(a, 1, "reject") is Verdict.granted
    before = a.state.model_copy(deep=True)
    reason = a.refusal(run_id(2), 2, "reject")
    assert reason is not None
    assert "max_concurrent_executions is 2" in reason
    assert ask(a, 2, "reject") is Verdict.rejected
    assert a.state == before
    assert a.refusal(run_id(0), 2, "reject") is None  # a holder asking again


def test_the_queue_is_bounded() -> None:
    a = admissions(1)
    for n in range(MAX_QUEUED + 1):
        ask(a, n)
    assert len(a.state.queue) == MAX_QUEUED
    assert ask(a, MAX_QUEUED + 1) is Verdict.rejected


def test_holders_are_notified_once_they_claim() -> None:
    a = admissions(1)
    ask(a, 0)
    ask(a, 1)
    assert a.to_notify() == []  # the holder has not claimed; it learns from its claim
    assert ask(a, 0, claim=True) is Verdict.granted
    assert a.to_notify() == []  # the claim's answer told it
    assert ask(a, 1, claim=True) is Verdict.queued
    a.release(run_id(0))
    assert a.to_notify() == [run_id(1)]
    a.notified(run_id(1))
    assert a.to_notify() == []


def test_cancelled_while_queued_leaves_the_queue() -> None:
    a = admissions(1)
    for n in range(3):
        ask(a, n)
    assert a.release(run_id(1))
    assert [e.execution_id for e in a.state.queue] == [run_id(2)]
    assert not a.release(run_id(1))


def test_reap_frees_closed_and_never_started_executions() -> None:
    a = admissions(2)
    for n in range(4):
        ask(a, n, claim=n != 1)
    assert a.needs_check()
    late = T0 + timedelta(seconds=START_WINDOW + 1)
    found = {
        run_id(0): Liveness.closed,  # terminated
        run_id(1): Liveness.missing,  # its client died before starting it
        run_id(2): Liveness.running,
    }
    assert a.reap(found, T0) == [run_id(0)]  # run 1 may still be starting
    assert a.reap(found, late) == [run_id(1)]
    assert [e.execution_id for e in a.state.holders] == [run_id(2), run_id(3)]
    assert a.state.queue == []


def test_a_lower_limit_lets_holders_finish() -> None:
    a = admissions(3)
    for n in range(3):
        ask(a, n)
    assert a.request(run_id(3), limit=1, overflow="queue", now=T0) is Verdict.queued
    a.release(run_id(0))
    a.release(run_id(1))
    assert a.position(run_id(3)) == 1
    a.release(run_id(2))
    assert a.find(run_id(3)) == (a.state.holders[0], True)


def test_settings_are_validated() -> None:
    options = global_options({"max_concurrent_executions": 3})
    assert options.max_concurrent_executions == 3
    assert options.overflow == "queue"
    assert global_options({}).max_concurrent_executions is None
    for bad in (
        {"max_concurrent_executions": 0},
        {"max_concurrent_executions": 1001},
        {"max_concurrent_executions": True},
        {"max_concurrent_executions": "3"},
        {"max_concurrent_executions": 2, "concurrency_overflow": "drop"},
        {"concurrency_overflow": "reject"},
    ):
        with pytest.raises(ValueError, match=r"max_concurrent_executions|concurrency_overflow"):
            global_options(bad)
    definition = workflow("wf", [node("a")], max_concurrent_executions=-1)
    with pytest.raises(PluginError) as caught:
        validate_workflow(definition)
    assert caught.value.code is PluginErrorCode.InvalidWorkflowStructure
    assert "max_concurrent_executions" in caught.value.message
