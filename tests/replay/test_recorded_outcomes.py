"""Ended runs stay readable: the outcome every recorded history stored (its result, its
failure's details, or its cancelled memo; plain before the ``compact-outcome`` patch, compact
after it) reads back as an ExecutionOutcome with the run's status, node states and events."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from engine.runtime.contracts import EXECUTION_WORKFLOW, ExecutionOutcome
from engine.runtime.outcome_pack import FORMAT

HISTORIES = Path(__file__).parent / "histories"


def _decoded(payload: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(payload["data"]))


def _stored_outcomes(history: dict[str, Any]) -> list[Any]:
    """Outcomes an execution workflow's history stored as it ended."""
    found = []
    for event in history["events"]:
        if "workflowExecutionCompletedEventAttributes" in event:
            payloads = event["workflowExecutionCompletedEventAttributes"]["result"]["payloads"]
            found.append(_decoded(payloads[0]))
        elif "workflowExecutionFailedEventAttributes" in event:
            failure = event["workflowExecutionFailedEventAttributes"]["failure"]
            details = failure.get("applicationFailureInfo", {}).get("details", {})
            found.extend(_decoded(payload) for payload in details.get("payloads", [])[:1])
        elif "workflowPropertiesModifiedEventAttributes" in event:
            fields = event["workflowPropertiesModifiedEventAttributes"]["upsertedMemo"]["fields"]
            if "outcome" in fields:
                found.append(_decoded(fields["outcome"]))
    return found


def _executions() -> list[Path]:
    paths = []
    for path in sorted(HISTORIES.glob("*.json")):
        start = json.loads(path.read_text())["events"][0]
        kind = start["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]
        if kind == EXECUTION_WORKFLOW:
            paths.append(path)
    return paths


@pytest.mark.parametrize("path", _executions(), ids=lambda path: path.stem)
def test_the_stored_outcome_reads_back(path: Path) -> None:
    history = json.loads(path.read_text())
    for stored in _stored_outcomes(history):
        outcome = ExecutionOutcome.model_validate(stored)
        assert outcome.context.execution_id
        assert outcome.context.status.is_terminal
        assert outcome.events
        assert outcome.events[-1].type.value.startswith("workflow_")
        assert all(event.execution_id for event in outcome.events)
        # written again in its own form, it reads back equal
        again = ExecutionOutcome.model_validate_json(outcome.model_dump_json())
        assert again == outcome


def test_recorded_histories_hold_both_forms() -> None:
    forms = {
        stored.get("format", 1)
        for path in _executions()
        for stored in _stored_outcomes(json.loads(path.read_text()))
    }
    assert forms == {1, FORMAT}
