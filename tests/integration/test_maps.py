"""Splitter maps: a subgraph once per item, gathered in order, sharded into children."""

from __future__ import annotations

import pytest

from engine import (
    AdvancedPluginOrchestrator,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from tests.helpers.builders import edge, node, workflow

Status = WorkflowExecutionStatus


def _map(workflow_id: str, body_plugin: str = "echo", **split: object) -> PluginWorkflow:
    """list -> split -> [square -> tag] -> gather -> report."""
    splitter = WorkflowNode(
        node_id="split",
        plugin_id="split",
        node_type=WorkflowNodeType.Splitter,
        configuration={"items": "list.inputs.numbers", **split},
    )
    gather = WorkflowNode(
        node_id="gather", plugin_id="aggregate", node_type=WorkflowNodeType.Aggregator
    )
    return workflow(
        workflow_id,
        [
            node("list", "echo"),
            splitter,
            node("square", body_plugin),
            node("tag"),
            gather,
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


async def _run(orchestrator: AdvancedPluginOrchestrator, definition: PluginWorkflow, items: list):  # type: ignore[no-untyped-def]
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id, {"numbers": items})
    return execution_id, await orchestrator.wait_for_completion(execution_id, 300)


async def test_map_inline_keeps_input_order(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    items = [{"n": n} for n in range(40)]
    _, context = await _run(orchestrator, _map(unique("map"), max_concurrency=7), items)
    assert context.status is Status.Completed, context.error_messages
    gathered = context.node_states["gather"]["result"]
    assert gathered["count"] == 40
    # Each item's result is tag's output, whose input is square's, whose input is the item.
    assert [r["inputs"]["square"]["inputs"]["split"]["item"] for r in gathered["items"]] == items
    assert context.node_states["square"]["result"] == {
        "runs": 40,
        "completed": 40,
        "failed": 0,
        "skipped": 0,
    }
    assert context.node_states["split"]["result"]["failed"] == 0
    report_input = context.execution_data["results"]["report"]["inputs"]["gather"]
    assert report_input["count"] == 40


async def test_a_large_map_is_sharded_into_child_executions(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    items = [{"n": n} for n in range(450)]
    definition = _map(unique("sharded"), max_concurrency=100, shard_size=200)
    execution_id, context = await _run(orchestrator, definition, items)
    assert context.status is Status.Completed, context.error_messages
    gathered = context.node_states["gather"]["result"]["items"]
    assert [r["inputs"]["square"]["inputs"]["split"]["index"] for r in gathered] == list(range(450))
    children = [
        e.id
        async for e in orchestrator.client.list_workflows(
            f"WorkflowId STARTS_WITH '{execution_id}/split'"
        )
    ]
    assert sorted(children) == sorted(
        f"{execution_id}/split-items-{a}-{b}" for a, b in ((0, 199), (200, 399), (400, 449))
    )
    history = await orchestrator.client.get_workflow_handle(execution_id).fetch_history()
    assert (
        len(history.events) < 200
    )  # the parent's history holds three children, not 900 activities


async def test_failed_items_within_tolerance_and_beyond(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    items = [{"n": n} for n in range(5)]
    tolerant = _map(unique("tolerant"), body_plugin="fail", max_failures=5)
    tolerant.nodes[2].configuration["retry"] = {"max_attempts": 1}
    _, context = await _run(orchestrator, tolerant, items)
    assert context.status is Status.Completed, context.error_messages
    assert context.node_states["gather"]["result"]["items"] == [None] * 5
    split = context.node_states["split"]["result"]
    assert split["failed"] == 5
    assert [e["index"] for e in split["errors"]] == [0, 1, 2, 3, 4]
    strict = _map(unique("strict"), body_plugin="fail", max_failures=2)
    strict.nodes[2].configuration["retry"] = {"max_attempts": 1}
    _, context = await _run(orchestrator, strict, items)
    assert context.status is Status.Failed
    assert "5 of 5 items failed (tolerated: 2)" in context.error_messages[0]


async def test_malformed_maps_are_refused(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    no_end = _map(unique("no-end"))
    no_end.nodes[4].node_type = WorkflowNodeType.Processor
    with pytest.raises(PluginError) as info:
        await orchestrator.register_workflow(no_end)
    assert info.value.code is PluginErrorCode.InvalidWorkflowStructure
    assert "must end in exactly one Aggregator node" in info.value.message
    leaking = _map(unique("leak"))
    leaking.connections.append(edge("list", "tag", target_port="side"))
    with pytest.raises(PluginError) as info:
        await orchestrator.register_workflow(leaking)
    assert "node 'tag' of its map has inputs from outside it: list" in info.value.message


def _conditional_map(workflow_id: str, condition: str) -> PluginWorkflow:
    """list -> split -(condition)-> square -> gather -> report."""
    splitter = WorkflowNode(
        node_id="split",
        plugin_id="split",
        node_type=WorkflowNodeType.Splitter,
        configuration={"items": "list.inputs.numbers", "max_failures": 10},
    )
    gather = WorkflowNode(
        node_id="gather", plugin_id="aggregate", node_type=WorkflowNodeType.Aggregator
    )
    return workflow(
        workflow_id,
        [node("list", "echo"), splitter, node("square"), gather, node("report")],
        [
            edge("list", "split"),
            edge("split", "square", condition=condition),
            edge("square", "gather"),
            edge("gather", "report"),
        ],
    )


async def test_a_condition_on_the_edge_into_a_map_decides_per_item(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    # The condition is about the item; it used to be evaluated once more on the splitter's
    # summary when the map ended (no item there), which failed the map after every item ran.
    definition = _conditional_map(unique("map-cond"), "item.n > 1")
    items = [{"n": n} for n in range(4)]
    execution_id, context = await _run(orchestrator, definition, items)
    assert context.status is Status.Completed, context.error_messages
    gathered = context.node_states["gather"]["result"]
    assert gathered["items"] == [
        None,
        None,
        {"node": "square", "inputs": {"n": 2}},
        {"node": "square", "inputs": {"n": 3}},
    ]
    assert context.node_states["square"]["result"]["completed"] == 2
    assert context.node_states["report"]["status"] == "completed"
    history = await orchestrator.client.get_workflow_handle(execution_id).fetch_history()
    patches = [
        e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    assert any(b'"map-entry-edges"' in p for p in patches)


async def test_a_condition_the_items_cannot_answer_fails_them_and_the_run_ends(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    # Used to raise inside the workflow task for each item: the run wedged, retrying it.
    definition = _conditional_map(unique("map-bad-cond"), "order.total > 1")
    _, context = await _run(orchestrator, definition, [{"n": 1}, {"n": 2}])
    assert context.status is Status.Completed, context.error_messages
    errors = context.node_states["split"]["result"]["errors"]
    assert [error["index"] for error in errors] == [0, 1]
    assert "unknown variable 'order'" in errors[0]["error"]
    assert context.node_states["gather"]["result"]["items"] == [None, None]
