"""The compact form of an ended run's outcome (engine.runtime.outcome_pack): lossless, both
forms readable, and small."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from engine import WorkflowEventType, WorkflowExecutionContext, WorkflowExecutionStatus
from engine.language.models import WorkflowEvent
from engine.language.validation import compile_workflow
from engine.runtime.contracts import ExecutionOutcome
from engine.runtime.interpreter import Interpreter, NodeCall, NodeFailure, NodeSuccess
from engine.runtime.outcome_pack import FORMAT
from tests.helpers.builders import chain

START = datetime(2026, 12, 4, 18, 0, 0, 123456, tzinfo=UTC)


class _Clock:
    """A clock that moves 1.5 ms at each reading (as workflow time moves between tasks)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1500)
        return self.now


def _run(nodes: int, fail: str | None = None, output: Any = None) -> ExecutionOutcome:
    async def runner(call: NodeCall) -> NodeSuccess:
        if call.node_id == fail:
            raise NodeFailure("boom", error_type="ValueError", attempts=3)
        return NodeSuccess(output if output is not None else {"n": call.node_id}, attempts=1)

    interpreter = Interpreter(
        compile_workflow(chain("packed", nodes, mode="sequential")),
        execution_id="packed/run-0123456789abcdef",
        input_data={"x": 1},
        runner=runner,
        clock=_Clock(),
    )
    asyncio.run(interpreter.run())
    return ExecutionOutcome(context=interpreter.context(), events=interpreter.stored_events())


def _compact(outcome: ExecutionOutcome) -> ExecutionOutcome:
    return outcome.model_copy(update={"format": FORMAT})


@pytest.mark.parametrize("fail", [None, "n3"])
def test_a_run_reads_back_equal_from_the_compact_form(fail: str | None) -> None:
    outcome = _run(8, fail=fail)
    text = _compact(outcome).model_dump_json()
    assert json.loads(text)["format"] == FORMAT
    back = ExecutionOutcome.model_validate_json(text)
    assert back.context == outcome.context
    assert back.events == outcome.events
    assert list(back.context.node_states["n0"]) == list(outcome.context.node_states["n0"])
    # and from the dict a result() without a type hint gives
    assert ExecutionOutcome.model_validate(json.loads(text)).events == outcome.events
    # written again, it is the same text
    assert back.model_dump_json() == text


def test_the_plain_form_is_written_as_before_and_still_read() -> None:
    outcome = _run(3)
    text = outcome.model_dump_json()
    assert "format" not in json.loads(text)
    assert isinstance(json.loads(text)["events"], list)
    assert ExecutionOutcome.model_validate_json(text) == outcome


def test_what_does_not_fit_the_compact_rows_is_kept_as_it_is() -> None:
    at = START
    context = WorkflowExecutionContext(
        execution_id="e",
        workflow_id="w",
        status=WorkflowExecutionStatus.Failed,
        start_time=at,
        node_states={
            # node id not its key (a pass), a time that is no isoformat of an offset,
            # a state without times
            "a#2": {"node_id": "a", "plugin_id": "p", "status": "failed", "started_at": "then"},
            "b": {"node_id": "b", "plugin_id": "p", "status": "pending", "attempts": 0},
            "c": {
                "node_id": "c",
                "plugin_id": "q",
                "status": "completed",
                "started_at": (at + timedelta(seconds=1)).isoformat(),
                "completed_at": "2026-12-04T18:00:01Z",
                "result": {"started_at": 5},
            },
        },
    )
    events = [
        WorkflowEvent(type=WorkflowEventType.workflow_started, sequence=4, timestamp=at),
        WorkflowEvent(
            type=WorkflowEventType.node_failed,
            execution_id="e",
            workflow_id="other",
            sequence=5,
            timestamp=at - timedelta(seconds=3),
            node_id="a",
            error="x",
            details={"k": [1, None]},
        ),
        WorkflowEvent(
            type=WorkflowEventType.execution_progress_updated,
            execution_id="e",
            workflow_id="w",
            sequence=6,
            timestamp=at,
            progress=0.5,
        ),
    ]
    outcome = ExecutionOutcome(context=context, events=events, truncated=True, format=FORMAT)
    back = ExecutionOutcome.model_validate_json(outcome.model_dump_json())
    assert back == outcome

    gap = outcome.model_copy(update={"events": [events[0], events[2]]})
    packed = json.loads(gap.model_dump_json())
    assert isinstance(packed["events"], list)  # not consecutive: a plain list
    assert ExecutionOutcome.model_validate(packed) == gap


def test_a_malformed_compact_form_is_refused() -> None:
    packed = json.loads(_compact(_run(2)).model_dump_json())
    packed["events"]["rows"][0] = "nonsense"
    with pytest.raises(ValidationError, match="format-2"):
        ExecutionOutcome.model_validate(packed)
    with pytest.raises(ValidationError):
        ExecutionOutcome.model_validate({"format": FORMAT})
    packed = json.loads(_compact(_run(2)).model_dump_json())
    packed["events"]["rows"][1][1] = 10**30  # microseconds past any date
    with pytest.raises(ValidationError, match="format-2"):
        ExecutionOutcome.model_validate(packed)


def test_the_compact_form_of_a_chain_is_a_fraction_of_the_plain_one() -> None:
    """The bound behind the history test (tests/integration/test_history_size.py): an
    outcome costs under 120 bytes per node even when every node's output differs."""
    outcome = _run(100)
    plain = len(outcome.model_dump_json())
    packed = len(_compact(outcome).model_dump_json())
    assert packed < plain / 5
    assert packed / 100 < 120
