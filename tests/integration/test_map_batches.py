"""Batched Splitter maps on the dev server: one activity per batch of items, with the results,
errors and max_failures of the unbatched map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType

from engine import (
    AdvancedPluginOrchestrator,
    PluginError,
    PluginWorkflow,
    WorkflowExecutionContext,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.temporal.blobs import BlobStore, is_ref
from plugins import PluginContext, PluginRegistry
from tests.helpers.builders import edge, node, workflow
from tests.helpers.plugins import read_count
from tests.helpers.plugins import test_registry as plugins_for_tests
from tests.helpers.waiting import eventually

Status = WorkflowExecutionStatus


@pytest.fixture(name="registry")
def fixture_registry(tmp_path: Path) -> PluginRegistry:
    """The test plugins plus ``every_third``, which fails on items whose n divides by 3."""
    registry = plugins_for_tests(tmp_path)

    @registry.plugin("every_third")
    async def every_third(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        n = inputs["split"]["item"]["n"]
        if n % 3 == 0:
            raise ValueError(f"no multiples of three ({n})")
        return {"n": n, "attempt": ctx.attempt}

    return registry


def _map(workflow_id: str, body: WorkflowNode, **split: Any) -> PluginWorkflow:
    """list -> split -> <body> -> gather."""
    return workflow(
        workflow_id,
        [
            node("list", "echo"),
            WorkflowNode(
                node_id="split",
                plugin_id="split",
                node_type=WorkflowNodeType.Splitter,
                configuration={"items": "list.inputs.numbers", **split},
            ),
            body,
            WorkflowNode(
                node_id="gather", plugin_id="aggregate", node_type=WorkflowNodeType.Aggregator
            ),
        ],
        [edge("list", "split"), edge("split", body.node_id), edge(body.node_id, "gather")],
    )


async def _run(
    orchestrator: AdvancedPluginOrchestrator, definition: PluginWorkflow, items: list[Any]
) -> tuple[str, WorkflowExecutionContext]:
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id, {"numbers": items})
    return execution_id, await orchestrator.wait_for_completion(execution_id, 120)


async def _activities(orchestrator: AdvancedPluginOrchestrator, execution_id: str) -> list[str]:
    """Activity types scheduled by the execution, in order."""
    history = await orchestrator.client.get_workflow_handle(execution_id).fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def test_batched_results_equal_the_unbatched_maps_with_one_activity_per_batch(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique: Any
) -> None:
    items = [{"n": n} for n in range(23)]
    plain_id, plain = await _run(orchestrator, _map(unique("plain"), node("work", "echo")), items)
    batched_id, batched = await _run(
        orchestrator,
        _map(unique("batched"), node("work", "echo"), batch_size=5, max_concurrency=10),
        items,
    )
    assert plain.status is batched.status is Status.Completed, batched.error_messages
    for node_id in ("split", "work", "gather"):
        assert batched.node_states[node_id]["result"] == plain.node_states[node_id]["result"]
    assert batched.node_states["work"]["result"] == {
        "runs": 23,
        "completed": 23,
        "failed": 0,
        "skipped": 0,
    }
    assert await _activities(orchestrator, plain_id) == ["run_plugin_node"] * 24
    assert (
        await _activities(orchestrator, batched_id)
        == ["run_plugin_node"] + ["run_plugin_batch"] * 5
    )


async def test_failures_in_a_batch_are_per_item_within_and_beyond_max_failures(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique: Any
) -> None:
    items = [{"n": n} for n in range(10)]  # 0, 3, 6 and 9 fail
    body = node("work", "every_third", retry={"max_attempts": 2, "initial_interval": 0.05})
    _, tolerant = await _run(
        orchestrator, _map(unique("tolerant"), body, batch_size=4, max_failures=4), items
    )
    assert tolerant.status is Status.Completed, tolerant.error_messages
    results = tolerant.node_states["gather"]["result"]["items"]
    assert [r and r["n"] for r in results] == [None, 1, 2, None, 4, 5, None, 7, 8, None]
    assert {r["attempt"] for r in results if r} == {1}
    split = tolerant.node_states["split"]["result"]
    assert [e["index"] for e in split["errors"]] == [0, 3, 6, 9]
    assert split["errors"][1]["error"] == (
        "node 'work' (plugin 'every_third') failed after 2 attempts: "
        "ValueError: no multiples of three (3)"
    )
    # Retries happen per item inside the batch: the counts see each item once.
    assert tolerant.node_states["work"]["result"] == {
        "runs": 10,
        "completed": 6,
        "failed": 4,
        "skipped": 0,
    }
    _, strict = await _run(
        orchestrator, _map(unique("strict"), body, batch_size=4, max_failures=3), items
    )
    assert strict.status is Status.Failed
    assert "4 of 10 items failed (tolerated: 3); item 0: node 'work'" in strict.error_messages[0]


async def test_retries_per_item_a_batch_larger_than_the_map_and_a_sharded_batched_map(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique: Any
) -> None:
    flaky = node("work", "flaky", succeed_on=2, retry={"initial_interval": 0.05})
    execution_id, context = await _run(
        orchestrator, _map(unique("small"), flaky, batch_size=100), [{"n": n} for n in range(5)]
    )
    assert context.status is Status.Completed, context.error_messages
    assert context.node_states["gather"]["result"]["items"] == [{"attempt": 2}] * 5
    assert await _activities(orchestrator, execution_id) == ["run_plugin_node", "run_plugin_batch"]
    items = [{"n": n} for n in range(25)]
    definition = _map(
        unique("sharded"), node("work", "echo"), batch_size=5, shard_size=2, max_concurrency=10
    )
    execution_id, context = await _run(orchestrator, definition, items)
    assert context.status is Status.Completed, context.error_messages
    gathered = context.node_states["gather"]["result"]["items"]
    assert [r["inputs"]["split"]["index"] for r in gathered] == list(range(25))
    query = f"WorkflowId STARTS_WITH '{execution_id}/split'"
    children = sorted([e.id async for e in orchestrator.client.list_workflows(query)])
    assert children == sorted(
        f"{execution_id}/split-items-{a}-{b}" for a, b in ((0, 9), (10, 19), (20, 24))
    )
    for child in children:
        assert set(await _activities(orchestrator, child)) == {"run_plugin_batch"}


async def test_large_outputs_of_a_batch_go_to_the_blob_store(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique: Any
) -> None:
    # Each output is under the offload threshold, but seven of them exceed one payload.
    body = node("work", "big_output", size=240_000)
    _, context = await _run(
        orchestrator, _map(unique("large"), body, batch_size=8), [{"n": n} for n in range(7)]
    )
    assert context.status is Status.Completed, context.error_messages
    gathered = context.execution_data["results"]["gather"]["items"]  # node results: too large
    blobs = [result["blob"] for result in gathered]
    assert len(blobs) == 7
    offloaded = [value for value in blobs if is_ref(value)]
    assert offloaded, "the batch's outcomes must have been shrunk into the blob store"
    assert all(value == "x" * 240_000 for value in blobs if not is_ref(value))
    assert BlobStore.configured().get(offloaded[0]) == "x" * 240_000


async def test_batch_size_needs_a_body_of_one_plugin_node(
    orchestrator: AdvancedPluginOrchestrator, unique: Any
) -> None:
    definition = _map(unique("two"), node("work", "echo"), batch_size=10)
    definition.nodes.insert(3, node("more", "echo"))
    definition.connections[-1] = edge("work", "more")
    definition.connections.append(edge("more", "gather"))
    with pytest.raises(PluginError, match="batch_size needs a map whose body is one plugin node"):
        await orchestrator.register_workflow(definition)
    with pytest.raises(PluginError, match="batch_size"):
        await orchestrator.register_workflow(
            _map(unique("zero"), node("work", "echo"), batch_size=0)
        )


async def test_cancelling_a_run_cancels_its_running_batches(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique: Any, tmp_path: Path
) -> None:
    body = node("work", "sleep", seconds=60, heartbeat_timeout=2)
    definition = _map(unique("cancelled"), body, batch_size=2)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(
        definition.workflow_id, {"numbers": [{"n": n} for n in range(4)]}
    )
    await eventually(lambda: _count(tmp_path, "work.started"), lambda count: count == 4)
    await orchestrator.cancel_execution(execution_id)
    context = await orchestrator.wait_for_completion(execution_id, 60)
    assert context.status is Status.Cancelled
    assert read_count(tmp_path, "work") == 0  # no item ran to its end
    history = await orchestrator.client.get_workflow_handle(execution_id).fetch_history()
    cancelled = [
        event
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED
    ]
    assert len(cancelled) == 2  # both batches acknowledged their cancellation


async def _count(directory: Path, name: str) -> int:
    return read_count(directory, name)
