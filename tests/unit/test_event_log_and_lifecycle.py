"""The event log and the lifecycle every run shares (engine.runtime.events.EventLog,
engine.runtime.lifecycle.Lifecycle), on their own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import WorkflowEvent, WorkflowEventType, WorkflowExecutionStatus
from engine.runtime.contracts import LongRunState
from engine.runtime.events import EventLog
from engine.runtime.lifecycle import Lifecycle
from tests.helpers.builders import chain
from tests.unit.fakes import Clock

Status = WorkflowExecutionStatus
Event = WorkflowEventType


@dataclass
class _Held:
    events: list[WorkflowEvent] = field(default_factory=list)
    next_sequence: int = 1


def _log(held: Any, keep: int | None = None, workflow_id: str = "w") -> EventLog:
    return EventLog(
        held, execution_id="w/run-1", workflow_id=lambda: workflow_id, clock=Clock(), keep=keep
    )


def test_events_are_numbered_and_stamped_by_the_runs_clock() -> None:
    held = _Held()
    log = _log(held)
    log.append(Event.workflow_started)
    log.append(Event.node_started, node_id="a")
    first, second = log.after()
    assert (first.sequence, first.type, first.execution_id, first.workflow_id) == (
        1,
        Event.workflow_started,
        "w/run-1",
        "w",
    )
    assert (second.sequence, second.node_id) == (2, "a")
    assert second.timestamp - first.timestamp == timedelta(seconds=1)
    assert log.last_sequence == 2
    assert held.next_sequence == 3


def test_a_bounded_log_drops_the_oldest_and_numbering_goes_on() -> None:
    held = _Held()
    log = _log(held, keep=3)
    for _ in range(5):
        log.append(Event.node_started, node_id="a")
    assert [event.sequence for event in log.all()] == [3, 4, 5]
    assert log.last_sequence == 5
    assert [event.sequence for event in log.after(0)] == [3, 4, 5]  # 1 and 2 are gone
    assert [event.sequence for event in log.after(3)] == [4, 5]
    assert [event.sequence for event in log.after(3, limit=1)] == [4]
    assert log.after(5) == []
    assert [event.sequence for event in log.last(2)] == [4, 5]
    assert log.last(0) == []
    unbounded = _log(_Held())
    for _ in range(5):
        unbounded.append(Event.node_started, node_id="a")
    assert len(unbounded.all()) == 5
    assert _log(_Held()).after(0) == []


def test_the_log_reads_its_holder_anew_so_a_restored_state_counts_on() -> None:
    held = _Held()
    log = _log(held)
    log.append(Event.workflow_started)
    carried = list(log.all())
    held.events, held.next_sequence = carried, 42  # a run restoring what it carried
    log.append(Event.node_started, node_id="a")
    assert [event.sequence for event in log.all()] == [1, 42]
    assert held.events is carried


def test_a_long_runs_state_holds_the_log_as_it_carries_it() -> None:
    state = LongRunState(workflow=chain("w", 1), start_time="2026-12-04T00:00:00+00:00")
    log = _log(state, keep=2)
    for node_id in "abc":
        log.append(Event.node_started, node_id=node_id)
    assert [event.node_id for event in state.events] == ["b", "c"]
    assert state.next_sequence == 4
    again = LongRunState.model_validate_json(state.model_dump_json())
    assert again.events == state.events


def _lifecycle(
    status: Status = Status.Running,
) -> tuple[Lifecycle, list[tuple[Event, dict[str, Any]]]]:
    emitted: list[tuple[Event, dict[str, Any]]] = []

    def emit(event_type: Event, **fields: Any) -> None:
        emitted.append((event_type, fields))

    lifecycle = Lifecycle(
        "w/run-1",
        status=status,
        clock=lambda: datetime(2026, 12, 4, tzinfo=UTC),
        emit=emit,
    )
    return lifecycle, emitted


def test_pause_and_resume_only_from_the_status_that_allows_them() -> None:
    lifecycle, emitted = _lifecycle(Status.Pending)
    with pytest.raises(PluginError) as refused:
        lifecycle.check_transition("pause")
    assert refused.value.code is PluginErrorCode.InvalidState
    assert refused.value.message == "cannot pause execution 'w/run-1': it is pending"
    lifecycle.start(paused=False)
    lifecycle.check_transition("pause")
    with pytest.raises(PluginError, match="cannot resume execution 'w/run-1': it is running"):
        lifecycle.resume()
    lifecycle.pause()
    assert lifecycle.is_paused
    with pytest.raises(PluginError, match="it is paused"):
        lifecycle.pause()
    lifecycle.resume()
    assert lifecycle.status is Status.Running
    assert [event for event, _ in emitted] == [Event.workflow_paused, Event.workflow_resumed]
    lifecycle.start(paused=True)
    assert lifecycle.is_paused


@pytest.mark.parametrize(
    ("status", "event", "fields", "messages"),
    [
        (Status.Completed, Event.workflow_completed, {"progress": 0.5}, []),
        (Status.Failed, Event.workflow_failed, {"error": "n failed"}, []),
        (Status.Cancelled, Event.workflow_cancelled, {}, ["execution was cancelled"]),
    ],
)
def test_the_end_is_recorded_once_with_its_event(
    status: Status, event: Event, fields: dict[str, Any], messages: list[str]
) -> None:
    lifecycle, emitted = _lifecycle()
    lifecycle.finish(status, progress=0.5, error="n failed")
    assert lifecycle.status is status
    assert lifecycle.end_time == datetime(2026, 12, 4, tzinfo=UTC)
    assert emitted == [(event, fields)]
    assert lifecycle.error_messages == messages


def test_a_quiet_end_records_no_event() -> None:
    lifecycle, emitted = _lifecycle()
    lifecycle.finish(Status.Cancelled, progress=0.0, error=None, announce=False)
    assert lifecycle.status is Status.Cancelled
    assert lifecycle.end_time is not None
    assert emitted == []
    assert lifecycle.error_messages == []
