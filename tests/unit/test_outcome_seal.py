"""An ended run measures its outcome against the payload limit and the data converter then
writes the form it measured, computed once (ExecutionOutcome.sealed_size, workflow._fit)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic_core import to_json

from engine.language.validation import compile_workflow
from engine.runtime import outcome_pack
from engine.runtime.contracts import ExecutionOutcome, compact
from engine.runtime.interpreter import Interpreter, NodeCall, NodeSuccess
from engine.runtime.outcome_pack import FORMAT
from engine.temporal import workflow as execution_workflow
from tests.helpers.builders import chain


def _outcome(nodes: int = 6, fmt: int = FORMAT) -> ExecutionOutcome:
    start = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    ticks = iter(range(10**6))

    async def runner(call: NodeCall) -> NodeSuccess:
        return NodeSuccess({"n": call.node_id, "pad": "x" * 50}, attempts=1)

    interpreter = Interpreter(
        compile_workflow(chain("sealed", nodes, mode="sequential")),
        execution_id="sealed/run-0123456789abcdef",
        input_data={"x": 1},
        runner=runner,
        clock=lambda: start + timedelta(milliseconds=next(ticks)),
    )
    asyncio.run(interpreter.run())
    return ExecutionOutcome(
        context=interpreter.context(), events=interpreter.stored_events(), format=fmt
    )


@pytest.mark.parametrize("fmt", [1, FORMAT])
def test_a_sealed_outcome_writes_what_it_measured_and_packs_once(
    fmt: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = _outcome(fmt=fmt)
    plain = outcome.model_dump_json()
    calls = []
    pack = outcome_pack.pack
    monkeypatch.setattr(outcome_pack, "pack", lambda *a, **k: calls.append(1) or pack(*a, **k))
    assert execution_workflow._fit(outcome) is outcome
    assert outcome.sealed_size() == len(plain.encode())
    calls.clear()
    assert to_json(outcome).decode() == plain  # what the data converter writes
    assert outcome.model_dump_json() == plain
    assert calls == []
    assert ExecutionOutcome.model_validate_json(plain) == outcome


def test_a_copy_with_other_fields_is_not_written_in_the_sealed_form() -> None:
    outcome = _outcome(fmt=1)
    outcome.sealed_size()
    packed = outcome.model_copy(update={"format": FORMAT})
    assert json.loads(packed.model_dump_json())["format"] == FORMAT
    outcome.unseal()
    assert "format" not in json.loads(outcome.model_dump_json())


def test_an_outcome_trimmed_to_fit_is_written_as_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = _outcome(nodes=40)
    full = len(outcome.model_dump_json())
    # Room for everything but the per-node results: they go, the rest stays.
    monkeypatch.setattr(execution_workflow, "MAX_PAYLOAD_BYTES", full - 100)
    fitted = execution_workflow._fit(outcome)
    written = json.loads(to_json(fitted))
    assert written.get("truncated") is True
    reread = ExecutionOutcome.model_validate(written)
    assert all("result" not in state for state in reread.context.node_states.values())
    assert len(to_json(fitted)) <= full - 100
    # Room for almost nothing: the last step trims without measuring, and still writes it.
    monkeypatch.setattr(execution_workflow, "MAX_PAYLOAD_BYTES", 10)
    fitted = execution_workflow._fit(outcome)
    reread = ExecutionOutcome.model_validate_json(to_json(fitted))
    assert reread.context.node_states == {}
    assert "per-node states of finished nodes were not kept" in reread.context.error_messages


def _events_both_ways(outcome: ExecutionOutcome) -> tuple[Any, Any]:
    context = outcome.context.model_dump(mode="json")
    dicts = [compact(event) for event in outcome.events]
    fast = outcome_pack.pack_event_models(outcome.events, context, compact)
    return fast, outcome_pack._pack_events(dicts, context)


def test_events_packed_from_their_models_are_the_events_packed_from_their_dicts() -> None:
    outcome = _outcome(nodes=12)
    fast, general = _events_both_ways(outcome)
    assert json.dumps(fast) == json.dumps(general)
    # Events the fast path leaves to the dicts: errors, details, results, other ids, odd
    # progress figures, a naive or out-of-order time; each alone and all together.
    at = outcome.events[-1].timestamp
    odd = [
        {"error": "boom", "node_id": "n1"},
        {"details": {"k": [1, 2]}},
        {"result": {"r": 1}, "node_id": "n2"},
        {"execution_id": "other/run-1"},
        {"workflow_id": ""},
        {"progress": float("nan")},
        {"progress": 0.5, "node_id": "n3"},
        {"progress": 1.0},
    ]
    for changes in odd:
        events = [
            *outcome.events,
            outcome.events[-1].model_copy(
                update={"sequence": outcome.events[-1].sequence + 1, **changes}
            ),
        ]
        one = outcome.model_copy(update={"events": events})
        fast, general = _events_both_ways(one)
        assert json.dumps(fast) == json.dumps(general), changes
        if changes.get("progress") == changes.get("progress"):  # NaN is not itself
            assert ExecutionOutcome.model_validate_json(one.model_dump_json()) == one
    for broken in (
        {"timestamp": at.replace(tzinfo=None)},
        {"sequence": outcome.events[-1].sequence + 5},
    ):
        events = [*outcome.events, outcome.events[-1].model_copy(update=broken)]
        fast, general = _events_both_ways(outcome.model_copy(update={"events": events}))
        assert json.dumps(fast, default=str) == json.dumps(general, default=str), broken
