"""Splitter maps: run a subgraph once per item of a list, gather the results in order.

A ``Splitter`` node (plugin ``split``) takes a list from its inputs (``items``: an input key,
or ``key.path`` into it; default: the first list among its inputs) and runs its *body* once
per item. The body is every node reachable from the splitter without passing an
``Aggregator`` node; all of it must lead into exactly one Aggregator, the map's end, and
nothing outside the map may connect into the body. Per item, the splitter counts as
completed with ``{"item": item, "index": i}`` as its output, and nodes of the body without
incoming DataFlow connections receive the item itself as their ``inputs``.

The aggregator gathers, in input order, each item's result: the output of the body node
that connects to it (an object keyed by node id if several do). Its ``strategy`` applies to
that list (``list``: ``{"items": [...], "count": n}``; ``count``; ``first``; ``merge``).
Failed items count against ``max_failures`` (default 0): within it, their results are
``null`` and the errors are listed in the splitter's output; beyond it, the map fails.

Up to ``shard_size`` items run in the execution itself, ``max_concurrency`` at a time.
Larger maps are sharded into child workflows of ``shard_size`` items, so a map far beyond
Temporal's per-run limits (2,000 pending activities, 51,200 history events) keeps every
history small.

A map whose body is one plugin node may set ``batch_size`` (like Step Functions' ItemBatcher):
its items then reach that node's plugin through one activity per batch of up to
``batch_size`` items (:mod:`engine.runtime.map_batch`), with the same per-item results,
errors and ``max_failures``. ``max_concurrency`` still counts items; a shard then holds
``shard_size`` batches, since Temporal's per-run limits count activities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.engine_nodes import SPLIT, is_engine_node, parse_config
from engine.language.models import (
    ConnectionType,
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowNodeType,
)


@dataclass(frozen=True)
class MapPlan:
    """The shape of one Splitter's map."""

    splitter: str
    aggregator: str
    body: list[str]  # in definition order
    ends: list[str]  # body nodes (or the splitter) connected to the aggregator
    body_workflow: PluginWorkflow  # the splitter and its body: the graph one item runs


def map_problems(workflow: PluginWorkflow) -> list[str]:
    """Why the definition's Splitter maps are malformed (empty when they are fine)."""
    problems = []
    for node in workflow.nodes:
        if node.node_type is WorkflowNodeType.Splitter:
            try:
                plan = map_plan(workflow, node.node_id)
            except PluginError as exc:
                problems.append(exc.message)
                continue
            problem = batch_problem(workflow, plan)
            if problem:
                problems.append(problem)
        elif node.plugin_id == "split":
            problems.append(f"node '{node.node_id}' uses 'split' but is not a Splitter node")
    return problems


def map_plan(workflow: PluginWorkflow, splitter_id: str) -> MapPlan:
    """The map of a Splitter node.

    Raises:
        PluginError: ``InvalidWorkflowStructure`` saying what is wrong with the map.
    """
    nodes = {node.node_id: node for node in workflow.nodes}
    splitter = nodes[splitter_id]

    def refuse(reason: str) -> PluginError:
        return PluginError(
            PluginErrorCode.InvalidWorkflowStructure,
            f"Splitter '{splitter_id}': {reason}",
        )

    if splitter.plugin_id != "split":
        raise refuse(f"its plugin_id must be 'split', not '{splitter.plugin_id}'")
    outgoing: dict[str, list[str]] = {n: [] for n in nodes}
    incoming: dict[str, list[str]] = {n: [] for n in nodes}
    for conn in workflow.connections:
        if conn.connection_type is ConnectionType.Event:
            continue
        outgoing[conn.source_node].append(conn.target_node)
        incoming[conn.target_node].append(conn.source_node)

    body: set[str] = set()
    aggregators: set[str] = set()
    frontier = list(outgoing[splitter_id])
    while frontier:
        node_id = frontier.pop()
        if node_id in body or node_id in aggregators:
            continue
        node_type = nodes[node_id].node_type
        if node_type is WorkflowNodeType.Aggregator:
            aggregators.add(node_id)
            continue
        if node_type is WorkflowNodeType.Splitter:
            raise refuse(f"maps do not nest (Splitter '{node_id}' is inside it)")
        body.add(node_id)
        frontier.extend(outgoing[node_id])
    if len(aggregators) != 1:
        found = ", ".join(sorted(aggregators)) or "none"
        raise refuse(f"its map must end in exactly one Aggregator node (found: {found})")
    aggregator = next(iter(aggregators))
    if nodes[aggregator].plugin_id != "aggregate":
        raise refuse(
            f"its Aggregator '{aggregator}' must use the 'aggregate' plugin to gather the map"
        )
    inside = body | {splitter_id}
    for node_id in sorted(body):
        strangers = [source for source in incoming[node_id] if source not in inside]
        if strangers:
            raise refuse(
                f"node '{node_id}' of its map has inputs from outside it: {', '.join(strangers)}"
            )
    strangers = [source for source in incoming[aggregator] if source not in inside]
    if strangers:
        raise refuse(
            f"its Aggregator '{aggregator}' has inputs from outside the map: {', '.join(strangers)}"
        )
    ordered = [node.node_id for node in workflow.nodes if node.node_id in body]
    ends = list(dict.fromkeys(incoming[aggregator]))
    body_workflow = PluginWorkflow(
        workflow_id=workflow.workflow_id,
        name=workflow.name,
        execution_mode=WorkflowExecutionMode.Parallel,
        nodes=[node for node in workflow.nodes if node.node_id in inside],
        connections=[
            conn
            for conn in workflow.connections
            if conn.source_node in inside and conn.target_node in inside
        ],
        global_configuration=workflow.global_configuration,
        version=workflow.version,
    )
    return MapPlan(splitter_id, aggregator, ordered, ends, body_workflow)


def split_batch_size(workflow: PluginWorkflow, splitter_id: str) -> int | None:
    """The ``batch_size`` of a Splitter (None: items run one activity each). It is read from
    the node's own configuration: ``batch_size`` in ``global_configuration`` is the stream's.

    Raises:
        PluginError: ``InvalidConfiguration`` for a bad configuration.
    """
    splitter = workflow.node(splitter_id)
    if splitter is None or splitter.plugin_id != SPLIT:
        return None
    batch_size: int | None = parse_config(SPLIT, splitter_id, splitter.configuration).batch_size
    return batch_size


def batch_problem(workflow: PluginWorkflow, plan: MapPlan) -> str:
    """Why the map cannot run in batches although its Splitter sets ``batch_size`` (empty
    when it can, or sets none): only a body of one plugin node can."""
    try:
        batch_size = split_batch_size(workflow, plan.splitter)
    except PluginError:
        return ""  # the configuration check reports it
    if batch_size is None:
        return ""
    where = f"Splitter '{plan.splitter}': batch_size"
    if len(plan.body) != 1:
        return (
            f"{where} needs a map whose body is one plugin node; its body has "
            f"{len(plan.body)}: {', '.join(plan.body) or 'none'}"
        )
    body = workflow.node(plan.body[0])
    assert body is not None
    if is_engine_node(body.plugin_id):
        return (
            f"{where} needs a map whose body is one plugin node; '{body.node_id}' is the "
            f"engine's '{body.plugin_id}', which runs in the workflow, not in an activity"
        )
    return ""


def pick_items(node_id: str, inputs: dict[str, Any], path: str) -> list[Any]:
    """The list a Splitter maps over.

    Raises:
        PluginError: ``InvalidInput`` naming the node and what was found instead.
    """
    if not path:
        for candidate in inputs.values():
            if isinstance(candidate, list):
                return candidate
            if isinstance(candidate, dict):
                for inner in candidate.values():
                    if isinstance(inner, list):
                        return inner
        raise PluginError(
            PluginErrorCode.InvalidInput,
            f"Splitter '{node_id}' found no list in its inputs "
            f"(keys: {', '.join(inputs) or 'none'})",
        )
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise PluginError(
                PluginErrorCode.InvalidInput,
                f"Splitter '{node_id}': its inputs have no '{path}' (missing '{part}')",
            )
        value = value[part]
    if not isinstance(value, list):
        raise PluginError(
            PluginErrorCode.InvalidInput,
            f"Splitter '{node_id}': '{path}' is {type(value).__name__}, not a list",
        )
    return value


def item_result(plan: MapPlan, outputs: dict[str, dict[str, Any]]) -> Any:
    """One item's result: the output of the body node that feeds the aggregator (an object
    keyed by node id when several do; absent ones were skipped)."""
    if len(plan.ends) == 1:
        return outputs.get(plan.ends[0])
    return {end: outputs[end] for end in plan.ends if end in outputs}


def aggregate_items(results: list[Any], strategy: str) -> dict[str, Any]:
    """The aggregator's output for a map's per-item results (in input order)."""
    if strategy == "count":
        return {"count": len(results)}
    if strategy == "first":
        return {"first": results[0] if results else None}
    if strategy == "merge":
        merged: dict[str, Any] = {}
        for result in results:
            if isinstance(result, dict):
                merged.update(result)
        return merged
    return {"items": results, "count": len(results)}
