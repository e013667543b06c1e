"""Running a Splitter map's items (engine.runtime.map_run) with a fake runner, no server:
per-item results in input order, failures within ``max_failures``, at most
``max_concurrency`` items at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.language.maps import MapPlan, map_plan
from engine.language.models import PluginWorkflow, WorkflowNode, WorkflowNodeType
from engine.language.validation import compile_workflow
from engine.runtime.interpreter import Interpreter, NodeCall, NodeFailure, NodeSuccess
from engine.runtime.map_run import MapOutcome, map_success, run_map_items
from tests.helpers.builders import edge, node, workflow
from tests.unit.fakes import Clock, FakeRunner, settle, until


def _definition(strategy: str = "list") -> PluginWorkflow:
    """list -> split -> [square -> tag] -> gather -> report."""
    return workflow(
        "m",
        [
            node("list"),
            WorkflowNode(node_id="split", plugin_id="split", node_type=WorkflowNodeType.Splitter),
            node("square"),
            node("tag"),
            WorkflowNode(
                node_id="gather",
                plugin_id="aggregate",
                node_type=WorkflowNodeType.Aggregator,
                configuration={"strategy": strategy},
            ),
            node("report"),
        ],
        [
            edge("list", "split"),
            edge("split", "square"),
            edge("square", "tag"),
            edge("tag", "gather"),
            edge("gather", "report"),
        ],
    )


def _plan() -> MapPlan:
    return map_plan(_definition(), "split")


def _item(call: NodeCall) -> int:
    """The item a body call works on (square reads it from the splitter's output)."""
    return int(call.inputs["split"]["item"])


def _output(call: NodeCall) -> dict[str, Any]:
    if call.node_id == "square":
        return {"squared": _item(call) ** 2}
    return {"tagged": call.inputs["square"]["squared"], "key": call.item_key}


async def _run(
    items: list[Any], runner: FakeRunner, *, offset: int = 0, max_concurrency: int = 50
) -> MapOutcome:
    return await run_map_items(
        _plan(),
        items,
        offset=offset,
        execution_id="m/run-1",
        runner=runner,
        clock=Clock(),
        max_concurrency=max_concurrency,
        pass_id=4,
    )


async def test_each_item_runs_the_body_and_results_come_in_input_order() -> None:
    # Items finish in reverse order: each item's square waits for its own gate.
    gates = {index: asyncio.Event() for index in range(5)}

    async def runner(call: NodeCall) -> NodeSuccess:
        if call.node_id == "square":
            await gates[_item(call)].wait()
        return NodeSuccess(_output(call))

    task = asyncio.create_task(
        run_map_items(
            _plan(),
            list(range(5)),
            offset=0,
            execution_id="m/run-1",
            runner=runner,
            clock=Clock(),
            max_concurrency=10,
        )
    )
    for index in reversed(range(5)):
        await settle()
        gates[index].set()
    outcome = await task
    assert outcome.results == [{"tagged": index**2, "key": f"split:{index}"} for index in range(5)]
    assert outcome.errors == []
    assert outcome.counts == {
        "square": {"runs": 5, "completed": 5, "failed": 0, "skipped": 0},
        "tag": {"runs": 5, "completed": 5, "failed": 0, "skipped": 0},
    }


async def test_calls_name_their_item_and_pass_and_items_are_numbered_from_the_offset() -> None:
    runner = FakeRunner(output=_output)
    outcome = await _run([2, 3], runner, offset=200)
    squares = [call for call in runner.calls if call.node_id == "square"]
    assert [call.item_key for call in squares] == ["split:200", "split:201"]
    assert {call.pass_id for call in runner.calls} == {4}
    assert [call.inputs for call in squares] == [
        {"split": {"item": 2, "index": 200}},
        {"split": {"item": 3, "index": 201}},
    ]
    assert outcome.failed == 0


async def test_failed_items_are_reported_by_index_and_the_others_still_run() -> None:
    def fails(call: NodeCall) -> bool:  # items 1 and 4 fail at tag
        return call.node_id == "tag" and call.inputs["square"]["squared"] in (1, 16)

    runner = FakeRunner(output=_output, fail=fails)
    outcome = await _run(list(range(7)), runner, offset=10)
    assert outcome.failed == 2
    assert [error["index"] for error in outcome.errors] == [11, 14]
    assert "node 'tag' (plugin 'echo') failed after 2 attempts" in outcome.errors[0]["error"]
    assert "tag broke" in outcome.errors[0]["error"]
    assert [result is None for result in outcome.results] == [
        False, True, False, False, True, False, False,
    ]  # fmt: skip
    assert outcome.results[6] == {"tagged": 36, "key": "split:16"}
    assert outcome.counts["tag"] == {"runs": 7, "completed": 5, "failed": 2, "skipped": 0}


async def test_at_most_max_concurrency_items_run_at_once() -> None:
    gate = asyncio.Event()
    runner = FakeRunner(output=_output, gates={"square": gate})
    task = asyncio.create_task(_run(list(range(10)), runner, max_concurrency=3))
    await until(lambda: runner.running == 3)
    await settle()
    assert runner.running == 3  # the other items wait for a slot
    gate.set()
    outcome = await task
    assert runner.max_running == 3
    assert len(runner.calls) == 20
    assert outcome.results == [{"tagged": index**2, "key": f"split:{index}"} for index in range(10)]


def _outcome(failed: int) -> MapOutcome:
    errors = [{"index": index, "error": f"item {index} broke"} for index in range(failed)]
    results = [None] * failed + [{"v": index} for index in range(failed, 4)]
    return MapOutcome(results, errors, {"square": {"runs": 4}})


def _aggregator(strategy: str) -> WorkflowNode:
    gather = _definition(strategy).node("gather")
    assert gather is not None
    return gather


def test_failures_within_max_failures_give_the_splitters_success() -> None:
    success = map_success(_outcome(1), items=4, max_failures=1, aggregator=_aggregator("list"))
    assert success.output == {
        "count": 4,
        "failed": 1,
        "errors": [{"index": 0, "error": "item 0 broke"}],
    }
    assert success.aggregated == {"items": [None, {"v": 1}, {"v": 2}, {"v": 3}], "count": 4}
    assert success.body_counts == {"square": {"runs": 4}}
    merged = map_success(_outcome(0), items=4, max_failures=0, aggregator=_aggregator("merge"))
    assert merged.aggregated == {"v": 3}


def test_more_failures_than_tolerated_fail_the_map_naming_the_first() -> None:
    with pytest.raises(NodeFailure) as failure:
        map_success(_outcome(2), items=4, max_failures=1, aggregator=_aggregator("list"))
    assert failure.value.error_type == "MapFailed"
    assert failure.value.message == ("2 of 4 items failed (tolerated: 1); item 0: item 0 broke")


# -- conditions and ports on the edges into a map ----------------------------------------------


def _conditional_map() -> PluginWorkflow:
    """split -(item.n > 1)-> square -> gather: the condition is about the item."""
    return workflow(
        "mc",
        [
            WorkflowNode(node_id="split", plugin_id="split", node_type=WorkflowNodeType.Splitter),
            node("square"),
            WorkflowNode(
                node_id="gather", plugin_id="aggregate", node_type=WorkflowNodeType.Aggregator
            ),
            node("report"),
        ],
        [
            edge("split", "square", condition="item.n > 1"),
            edge("square", "gather"),
            edge("gather", "report"),
        ],
    )


async def test_an_entry_condition_decides_per_item_which_items_run_the_body() -> None:
    # A Control edge carries no data: the body node gets the item as its input data.
    runner = FakeRunner(output=lambda call: {"n": call.inputs["n"]})
    plan = map_plan(_conditional_map(), "split")
    items = [{"n": n} for n in range(4)]
    outcome = await run_map_items(
        plan,
        items,
        offset=0,
        execution_id="mc/run-1",
        runner=runner,
        clock=Clock(),
        max_concurrency=4,
    )
    assert outcome.results == [None, None, {"n": 2}, {"n": 3}]
    assert outcome.errors == []
    assert sorted(call.item_key for call in runner.calls) == ["split:2", "split:3"]


async def test_an_entry_condition_that_cannot_be_evaluated_fails_each_item_not_the_task() -> None:
    definition = _conditional_map()
    definition.connections[0].properties = {"condition": "missing.n > 1"}
    runner = FakeRunner()
    outcome = await run_map_items(
        map_plan(definition, "split"),
        [{"n": 1}, {"n": 2}],
        offset=0,
        execution_id="mc/run-1",
        runner=runner,
        clock=Clock(),
        max_concurrency=4,
    )
    assert runner.calls == []
    assert [error["index"] for error in outcome.errors] == [0, 1]
    assert "unknown variable 'missing'" in outcome.errors[0]["error"]
    assert "'split' -> 'square'" in outcome.errors[0]["error"]


class _MapRunner(FakeRunner):
    """Runs the splitter as the Temporal runner does: its map's end in one success."""

    async def __call__(self, call: NodeCall) -> NodeSuccess:
        if call.node_id != "split":
            return await super().__call__(call)
        self.calls.append(call)
        return NodeSuccess(
            {"count": 4, "failed": 0, "errors": []},
            aggregated={"items": [None, None, {"n": 2}, {"n": 3}], "count": 4},
            body_counts={"square": {"runs": 2, "completed": 2, "failed": 0, "skipped": 2}},
        )


@pytest.mark.parametrize("patched", [True, False])
async def test_a_finished_maps_entry_edges_are_not_evaluated_again_on_its_summary(
    patched: bool,
) -> None:
    asked: list[bool] = []

    def map_entry_taken() -> bool:
        asked.append(patched)
        return patched

    interpreter = Interpreter(
        compile_workflow(_conditional_map()),
        execution_id="mc/run-1",
        input_data={},
        runner=_MapRunner(),
        clock=Clock(),
        map_entry_taken=map_entry_taken,
    )
    status = await interpreter.run()
    assert asked == [patched]  # asked once: the summary has no item
    if patched:
        assert status.value == "completed", interpreter.error_messages
        states = interpreter.node_states()
        assert states["report"].status.value == "completed"
        assert states["gather"].result == {"items": [None, None, {"n": 2}, {"n": 3}], "count": 4}
    else:  # as runs recorded before the map-entry-edges patch
        assert status.value == "failed"
        assert "unknown variable 'item'" in interpreter.error_messages[0]
