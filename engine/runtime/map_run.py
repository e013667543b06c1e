"""Running a Splitter map's items (see :mod:`engine.language.maps` for the map's shape): the
body runs once per item through its own :class:`~engine.runtime.interpreter.Interpreter`, pure
asyncio like the interpreter itself, so it tests with a fake runner."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.language.engine_nodes import AGGREGATE, parse_config
from engine.language.maps import MapPlan, aggregate_items, item_result
from engine.language.models import WorkflowEventType, WorkflowExecutionStatus, WorkflowNode
from engine.language.validation import compile_workflow
from engine.runtime.interpreter import Interpreter, NodeFailure, NodeRunner, NodeSuccess
from engine.runtime.scheduler import NodeStatus


@dataclass
class MapOutcome:
    """What a map produced: per-item results in input order, failures, per-node counts."""

    results: list[Any]
    errors: list[dict[str, Any]]
    counts: dict[str, dict[str, int]]

    @property
    def failed(self) -> int:
        return len(self.errors)


async def run_map_items(
    plan: MapPlan,
    items: list[Any],
    *,
    offset: int,
    execution_id: str,
    runner: NodeRunner,
    clock: Callable[[], datetime],
    max_concurrency: int,
    pass_id: int = 0,
    meter_conditions: Callable[[], bool] | None = None,
) -> MapOutcome:
    """Run the body once per item (``offset`` numbers them), at most ``max_concurrency``
    at once, in input order; pure asyncio like the interpreter it uses per item."""
    graph = compile_workflow(plan.body_workflow, check_maps=False)
    results: list[Any] = [None] * len(items)
    errors: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {
        node_id: {"runs": 0, "completed": 0, "failed": 0, "skipped": 0} for node_id in plan.body
    }
    slots = asyncio.Semaphore(max_concurrency)

    def count(event_type: WorkflowEventType, fields: dict[str, Any]) -> None:
        kind = event_type
        node_counts = counts.get(fields.get("node_id", ""))
        if node_counts is None:
            return
        if kind is WorkflowEventType.node_started:
            node_counts["runs"] += 1
        elif kind is WorkflowEventType.node_completed:
            node_counts["completed"] += 1
        elif kind is WorkflowEventType.node_failed:
            node_counts["failed"] += 1
        elif kind is WorkflowEventType.node_skipped:
            node_counts["skipped"] += 1

    async def one(position: int, item: Any) -> None:
        index = offset + position
        async with slots:
            interpreter = Interpreter(
                graph,
                execution_id=execution_id,
                input_data=item if isinstance(item, dict) else {"item": item},
                runner=runner,
                clock=clock,
                completed={plan.splitter: {"item": item, "index": index}},
                pass_id=pass_id,
                item_key=f"{plan.splitter}:{index}",
                emit=count,
                meter_conditions=meter_conditions,
            )
            status = await interpreter.run()
        if status is WorkflowExecutionStatus.Completed:
            outputs = {
                node_id: state.result
                for node_id, state in interpreter.node_states().items()
                if state.status is NodeStatus.completed and state.result is not None
            }
            results[position] = item_result(plan, outputs)
        else:
            messages = interpreter.error_messages
            errors.append({"index": index, "error": messages[0] if messages else status.value})

    await asyncio.gather(*(one(position, item) for position, item in enumerate(items)))
    errors.sort(key=lambda error: int(error["index"]))
    return MapOutcome(results, errors, counts)


def map_success(
    outcome: MapOutcome, *, items: int, max_failures: int, aggregator: WorkflowNode
) -> NodeSuccess:
    """The Splitter's success for a map of ``items`` items: its summary, the ``aggregator``
    node's output (by its strategy) and the body's counts.

    Raises:
        NodeFailure: ``MapFailed`` when more than ``max_failures`` items failed, naming the
            first one.
    """
    if outcome.failed > max_failures:
        first = outcome.errors[0]
        raise NodeFailure(
            f"{outcome.failed} of {items} items failed (tolerated: "
            f"{max_failures}); item {first['index']}: {first['error']}",
            error_type="MapFailed",
        )
    strategy = parse_config(AGGREGATE, aggregator.node_id, aggregator.configuration).strategy
    return NodeSuccess(
        {"count": items, "failed": outcome.failed, "errors": outcome.errors[:100]},
        aggregated=aggregate_items(outcome.results, strategy),
        body_counts=outcome.counts,
    )
