"""Batched Splitter maps (engine.runtime.map_batch) against the unbatched map: the same items
give the same results, errors and counts, whatever the body node's connections decide."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.base.errors import PluginError
from engine.language.maps import MapPlan, map_plan, map_problems
from engine.language.models import (
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.language.validation import validate_workflow
from engine.runtime.contracts import MAX_PAYLOAD_BYTES
from engine.runtime.interpreter import NodeCall, NodeFailure, NodeSuccess
from engine.runtime.map_batch import BatchCall, ItemOutcome, run_batched_items
from engine.runtime.map_run import MapOutcome, run_map_items
from tests.helpers.builders import edge, node, workflow


def _map(
    body: list[WorkflowNode] | None = None,
    connections: list[WorkflowConnection] | None = None,
    **split: Any,
) -> PluginWorkflow:
    body = body if body is not None else [node("work", "double")]
    return workflow(
        "batched",
        [
            node("source"),
            WorkflowNode(
                node_id="split",
                plugin_id="split",
                node_type=WorkflowNodeType.Splitter,
                configuration={"items": "source.items", **split},
            ),
            *body,
            WorkflowNode(
                node_id="gather", plugin_id="aggregate", node_type=WorkflowNodeType.Aggregator
            ),
        ],
        [
            edge("source", "split"),
            *(connections or [edge("split", "work"), edge("work", "gather")]),
        ],
    )


def _value(inputs: Any) -> Any:
    """The item's number, wherever the connections put it."""
    while isinstance(inputs, dict):
        for key in ("n", "item", "split"):
            if key in inputs:
                inputs = inputs[key]
                break
        else:
            return None
    return inputs


def _behaviour(inputs: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The fake plugin: fails on items whose number is divisible by ``fail_every``."""
    value = _value(inputs)
    every = config.get("fail_every")
    if every and isinstance(value, int) and value % every == 0:
        raise NodeFailure(f"no {value}", error_type="Boom", attempts=3)
    return {"doubled": value * 2 if isinstance(value, int) else value, "seen": inputs}


async def _unbatched(plan: MapPlan, items: list[Any], offset: int = 0) -> MapOutcome:
    async def runner(call: NodeCall) -> NodeSuccess:
        await asyncio.sleep(0)
        return NodeSuccess(_behaviour(call.inputs, call.config), attempts=1)

    return await run_map_items(
        plan,
        items,
        offset=offset,
        execution_id="e",
        runner=runner,
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        max_concurrency=7,
    )


class _BatchRunner:
    def __init__(self) -> None:
        self.calls: list[BatchCall] = []
        self.running = 0
        self.most = 0

    async def __call__(self, call: BatchCall) -> list[ItemOutcome]:
        self.calls.append(call)
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0)
        outcomes: list[ItemOutcome] = []
        for item in call.items:
            try:
                outcomes.append(NodeSuccess(_behaviour(item.inputs, call.config)))
            except NodeFailure as failure:
                outcomes.append(failure)
        self.running -= 1
        return outcomes


async def _batched(
    plan: MapPlan,
    items: list[Any],
    batch_size: int,
    runner: _BatchRunner | None = None,
    offset: int = 0,
    max_concurrency: int = 7,
) -> MapOutcome:
    return await run_batched_items(
        plan,
        items,
        offset=offset,
        execution_id="e",
        runner=runner or _BatchRunner(),
        batch_size=batch_size,
        max_concurrency=max_concurrency,
    )


def _same(left: MapOutcome, right: MapOutcome) -> None:
    assert left.results == right.results
    assert left.errors == right.errors
    assert left.counts == right.counts


ITEMS: list[Any] = [{"n": n} for n in range(23)]


@pytest.mark.parametrize("batch_size", [1, 4, 10, 23, 500])
async def test_batched_results_errors_and_counts_equal_the_unbatched_maps(batch_size: int) -> None:
    plan = map_plan(_map(), "split")
    _same(await _batched(plan, ITEMS, batch_size), await _unbatched(plan, ITEMS))


async def test_failures_conditions_ports_optional_and_plain_items_read_as_unbatched() -> None:
    shapes = {
        "failures": _map([node("work", "double", fail_every=5)]),
        "optional": _map([node("work", "double", fail_every=5, optional=True)]),
        "condition": _map(
            connections=[edge("split", "work", condition="item.n % 3 != 0"), edge("work", "gather")]
        ),
        "port": _map(
            connections=[edge("split", "work", source_port="item"), edge("work", "gather")]
        ),
        "control": _map(
            connections=[edge("split", "work", ConnectionType.Control), edge("work", "gather")]
        ),
        "two-inputs": _map(
            connections=[
                edge("split", "work"),
                edge("split", "work", ConnectionType.Dependency),
                edge("work", "gather"),
            ]
        ),
        "splitter-also-ends": _map(
            connections=[edge("split", "work"), edge("work", "gather"), edge("split", "gather")]
        ),
    }
    for name, definition in shapes.items():
        validate_workflow(definition)
        plan = map_plan(definition, "split")
        for items in (ITEMS, list(range(11)), ["a", None, 3]):
            if name in ("condition", "port") and not isinstance(items[0], dict):
                continue
            batched = await _batched(plan, items, 4, offset=100)
            _same(batched, await _unbatched(plan, items, offset=100))
    failures = await _batched(map_plan(shapes["failures"], "split"), ITEMS, 4)
    assert [error["index"] for error in failures.errors] == [0, 5, 10, 15, 20]
    assert failures.errors[0]["error"] == (
        "node 'work' (plugin 'double') failed after 3 attempts: Boom: no 0"
    )
    assert failures.counts == {"work": {"runs": 23, "completed": 18, "failed": 5, "skipped": 0}}


async def test_batches_hold_batch_size_items_in_order_and_max_concurrency_counts_items() -> None:
    plan = map_plan(_map(), "split")
    runner = _BatchRunner()
    await _batched(plan, ITEMS, 5, runner, offset=10, max_concurrency=10)
    assert [len(call.items) for call in runner.calls] == [5, 5, 5, 5, 3]
    assert [item.index for call in runner.calls for item in call.items] == list(range(10, 33))
    assert runner.most == 2  # 10 items at once: two batches of five
    assert {call.concurrency for call in runner.calls} == {5}
    assert runner.calls[0].items[0].inputs == {"split": {"item": {"n": 0}, "index": 10}}
    single = _BatchRunner()
    await _batched(plan, ITEMS, 100, single, max_concurrency=7)
    assert [len(call.items) for call in single.calls] == [23]
    assert single.calls[0].concurrency == 7  # never more items at once than max_concurrency


async def test_a_batch_never_outweighs_a_payload_and_a_too_large_item_fails_alone() -> None:
    plan = map_plan(_map(), "split")
    big = "x" * (MAX_PAYLOAD_BYTES // 3)
    items: list[Any] = [{"n": n, "pad": big} for n in range(5)]
    items.insert(2, {"n": 99, "pad": "y" * MAX_PAYLOAD_BYTES})
    runner = _BatchRunner()
    outcome = await _batched(plan, items, 10, runner)
    assert [[item.index for item in call.items] for call in runner.calls] == [[0, 1], [3, 4], [5]]
    assert [error["index"] for error in outcome.errors] == [2]
    assert "bytes of JSON; the limit is" in outcome.errors[0]["error"]
    assert outcome.counts["work"] == {"runs": 6, "completed": 5, "failed": 1, "skipped": 0}


async def test_a_failing_batch_runner_fails_the_map_and_cancels_the_other_batches() -> None:
    plan = map_plan(_map(), "split")
    cancelled: list[int] = []

    async def runner(call: BatchCall) -> list[ItemOutcome]:
        if call.items[0].index == 0:
            raise RuntimeError("lost")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(call.items[0].index)
            raise
        return []

    with pytest.raises(RuntimeError, match="lost"):
        await run_batched_items(
            plan, ITEMS, offset=0, execution_id="e", runner=runner, batch_size=5, max_concurrency=20
        )
    assert cancelled == [5, 10, 15]


def test_batch_size_is_bounded_and_needs_a_body_of_one_plugin_node() -> None:
    validate_workflow(_map(batch_size=1000))
    with pytest.raises(PluginError, match="batch_size"):
        validate_workflow(_map(batch_size=0))
    with pytest.raises(PluginError, match="batch_size"):
        validate_workflow(_map(batch_size=1001))
    with pytest.raises(PluginError, match="batch_size"):
        validate_workflow(_map(batch_size="many"))
    two = _map(
        [node("work", "double"), node("more", "double")],
        [edge("split", "work"), edge("work", "more"), edge("more", "gather")],
        batch_size=10,
    )
    assert map_problems(two) == [
        "Splitter 'split': batch_size needs a map whose body is one plugin node; its body "
        "has 2: work, more"
    ]
    waits = _map([node("work", "wait", seconds=1)], batch_size=10)
    assert "'work' is the engine's 'wait'" in map_problems(waits)[0]
    with pytest.raises(PluginError, match="one plugin node"):
        validate_workflow(waits)


def test_a_global_batch_size_is_the_streams_not_the_maps() -> None:
    definition = _map()
    definition.global_configuration["batch_size"] = 50
    validate_workflow(definition)
    from engine.language.maps import split_batch_size

    assert split_batch_size(definition, "split") is None
    definition.nodes[1].configuration["batch_size"] = 7
    assert split_batch_size(definition, "split") == 7


def test_contains_refs_finds_what_the_recursive_definition_finds() -> None:
    """contains_refs runs for every item of a batch: a loop now, with the same answers as the
    recursive definition (a reference at most four levels down)."""
    import random

    from engine.temporal.blobs import contains_refs, is_ref

    def reference(value: Any, depth: int = 0) -> bool:
        if is_ref(value):
            return True
        if depth >= 4 or not isinstance(value, dict | list):
            return False
        items = value.values() if isinstance(value, dict) else value
        return any(reference(item, depth + 1) for item in items)

    rng = random.Random(1)

    def value(depth: int) -> Any:
        roll = rng.random()
        if depth > 7 or roll < 0.3:
            return rng.choice([1, "x", None, {"$blob": "sha256:0"}, {"$blob": 3}])
        if roll < 0.65:
            return {f"k{i}": value(depth + 1) for i in range(rng.randint(0, 3))}
        return [value(depth + 1) for _ in range(rng.randint(0, 3))]

    found = 0
    for _ in range(3000):
        sample = value(0)
        assert contains_refs(sample) == reference(sample)
        assert contains_refs(sample, 2) == reference(sample, 2)
        found += reference(sample)
    assert 300 < found < 2700  # both answers occur
