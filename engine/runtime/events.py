"""A run's event log, and how results are filled into its events on read (results are stored
once, in the run's node records).

The batch interpreter and the long-running runs keep their log in the state they carry across
continue-as-new (``events`` and ``next_sequence`` of
:class:`~engine.runtime.contracts.BatchRunState` and
:class:`~engine.runtime.contracts.LongRunState`): :class:`EventLog` numbers, stamps, bounds and
slices the events of whatever holds those two fields, so the carried state keeps its shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from engine.language.models import WorkflowEvent, WorkflowEventType


class HeldEvents(Protocol):
    """Where a log keeps its events: the kept ones, oldest first, and the next number."""

    events: list[WorkflowEvent]
    next_sequence: int


class EventLog:
    """Appends a run's events with consecutive sequence numbers and the run's clock, keeps at
    most ``keep`` of them (the oldest are dropped, numbers keep counting; ``None``: all), and
    reads them after a sequence number.

    The events live in ``held`` (read anew at each call: a run may replace its list when it
    restores a carried state)."""

    def __init__(
        self,
        held: HeldEvents,
        *,
        execution_id: str,
        workflow_id: Callable[[], str],
        clock: Callable[[], datetime],
        keep: int | None = None,
    ) -> None:
        self._held = held
        self._execution_id = execution_id
        self._workflow_id = workflow_id
        self._clock = clock
        self._keep = keep

    def append(self, event_type: WorkflowEventType, **fields: Any) -> None:
        """Add an event of ``event_type`` with ``fields`` (node_id, error, details, ...)."""
        held = self._held
        held.events.append(
            WorkflowEvent(
                type=event_type,
                execution_id=self._execution_id,
                workflow_id=self._workflow_id(),
                sequence=held.next_sequence,
                timestamp=self._clock(),
                **fields,
            )
        )
        held.next_sequence += 1
        if self._keep is not None and len(held.events) > self._keep:
            del held.events[: len(held.events) - self._keep]

    def after(self, after: int = 0, limit: int = 1000) -> list[WorkflowEvent]:
        """Kept events with a sequence above ``after``, at most ``limit`` (older ones may have
        been dropped)."""
        kept = self._held.events
        if not kept:
            return []
        start = max(0, after - kept[0].sequence + 1)
        return kept[start : start + limit]

    def all(self) -> list[WorkflowEvent]:
        """A copy of the kept events."""
        return list(self._held.events)

    def last(self, count: int) -> list[WorkflowEvent]:
        """The last ``count`` kept events (what a run carries to its next Temporal run)."""
        return self._held.events[-count:] if count > 0 else []

    @property
    def last_sequence(self) -> int:
        """Sequence number of the last event (dropped events count)."""
        return self._held.next_sequence - 1


def with_results(
    events: Iterable[WorkflowEvent],
    result_of: Callable[[str], dict[str, Any] | None],
    final_results: Callable[[], dict[str, Any] | None],
) -> list[WorkflowEvent]:
    """Copy ``events``, giving ``node_completed`` its node's result and ``workflow_completed``
    the run's results."""
    filled = []
    for event in events:
        if event.type is WorkflowEventType.node_completed and event.node_id is not None:
            event = event.model_copy(update={"result": result_of(event.node_id)})
        elif event.type is WorkflowEventType.workflow_completed:
            event = event.model_copy(update={"result": final_results()})
        filled.append(event)
    return filled
