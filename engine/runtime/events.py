"""Helpers for the event stream: results are stored once and filled into events on read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.language.models import WorkflowEvent, WorkflowEventType


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
