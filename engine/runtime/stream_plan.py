"""How items flow through a Streaming pipeline, as a pure plan the stream activity executes.

For each micro-batch, nodes downstream of the Source run once, in topological order (ties by
the order of ``nodes``). Rules:

* A node's ``inputs`` hold one list of items per input key (``target_port``, else the
  upstream node's id), gathered from its incoming DataFlow and Control connections.
* A connection carries the upstream node's items: the list under its ``source_port`` if the
  output has that key, else the primary list: the output's ``items``, or ``records`` (so a
  plugin that knows nothing of port names serves a node with one declared output port).
* A Control connection with a condition passes the items for which the condition holds,
  evaluated on each item (a per-item router).
* Dependency connections order nodes and carry nothing. A node whose inputs are all empty in
  a batch is not called for it.
* Processors return ``{"items": [...]}``; sinks (no outgoing DataFlow) return a summary, whose
  ``written`` or ``count`` counts as the items they took.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from engine.language.conditions import Condition, ConditionError, compile_condition
from engine.language.models import ConnectionType, PluginWorkflow
from engine.language.options import plugin_config


class StreamError(ValueError):
    """A batch cannot flow: an output without items, a condition that fails on an item."""


@dataclass(frozen=True)
class StreamInput:
    """One incoming connection of a step."""

    upstream: str
    key: str
    port: str
    condition: Condition | None
    label: str


@dataclass(frozen=True)
class StreamStep:
    """One node of the pipeline."""

    node_id: str
    plugin_id: str
    config: dict[str, Any]
    inputs: list[StreamInput]
    output_ports: list[str]
    is_sink: bool


@dataclass
class StreamPlan:
    """The nodes downstream of the source, in the order a batch visits them."""

    source: str
    steps: list[StreamStep] = field(default_factory=list)
    source_ports: list[str] = field(default_factory=list)

    @property
    def node_ids(self) -> list[str]:
        return [self.source, *(step.node_id for step in self.steps)]


def plan_stream(workflow: PluginWorkflow, source_id: str) -> StreamPlan:
    """The plan for ``workflow``'s pipeline from ``source_id`` (the definition is valid)."""
    position = {node.node_id: index for index, node in enumerate(workflow.nodes)}
    nodes = {node.node_id: node for node in workflow.nodes}
    outgoing: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    incoming: dict[str, list[Any]] = {node_id: [] for node_id in nodes}
    for conn in workflow.connections:
        if conn.connection_type is ConnectionType.Event:
            continue
        outgoing[conn.source_node].append(conn.target_node)
        incoming[conn.target_node].append(conn)

    reached = {source_id}
    frontier = [source_id]
    while frontier:
        for target in outgoing[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)

    # Kahn's algorithm over the reached nodes, lowest position first.
    indegree = {n: sum(1 for c in incoming[n] if c.source_node in reached) for n in reached}
    for target in outgoing[source_id]:
        indegree[target] -= 1
    ready = [position[n] for n, d in indegree.items() if d == 0 and n != source_id]
    heapq.heapify(ready)
    ordered_ids = [node.node_id for node in workflow.nodes]
    order: list[str] = []
    while ready:
        node_id = ordered_ids[heapq.heappop(ready)]
        order.append(node_id)
        for target in outgoing[node_id]:
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, position[target])

    plan = StreamPlan(source=source_id, source_ports=list(nodes[source_id].output_ports))
    for node_id in order:
        node = nodes[node_id]
        inputs = []
        for conn in incoming[node_id]:
            if conn.source_node not in reached or conn.connection_type is ConnectionType.Dependency:
                continue
            text = (
                conn.properties.get("condition")
                if conn.connection_type is ConnectionType.Control
                else None
            )
            inputs.append(
                StreamInput(
                    upstream=conn.source_node,
                    key=conn.target_port or conn.source_node,
                    port=conn.source_port,
                    condition=compile_condition(text) if text else None,
                    label=conn.label(),
                )
            )
        has_data_out = any(
            c.source_node == node_id and c.connection_type is not ConnectionType.Dependency
            for c in workflow.connections
        )
        plan.steps.append(
            StreamStep(
                node_id=node_id,
                plugin_id=node.plugin_id,
                config=plugin_config(workflow.global_configuration, node.configuration),
                inputs=inputs,
                output_ports=list(node.output_ports),
                is_sink=not has_data_out,
            )
        )
    return plan


def primary_items(output: dict[str, Any], node_id: str) -> list[dict[str, Any]]:
    """The list of items a node's output carries by default (``items`` or ``records``)."""
    for key in ("items", "records"):
        value = output.get(key)
        if isinstance(value, list):
            return value
    raise StreamError(
        f"node '{node_id}' returned no 'items' list for the stream "
        f"(keys: {', '.join(sorted(output)) or 'none'})"
    )


def carried_items(
    step_input: StreamInput, upstream_output: dict[str, Any] | list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The items one connection carries in this batch, after its condition."""
    if isinstance(upstream_output, list):  # the source's batch
        items = upstream_output
    elif step_input.port and step_input.port in upstream_output:
        value = upstream_output[step_input.port]
        if not isinstance(value, list):
            raise StreamError(
                f"{step_input.label}: output key '{step_input.port}' of node "
                f"'{step_input.upstream}' is not a list of items"
            )
        items = value
    else:
        items = primary_items(upstream_output, step_input.upstream)
    if step_input.condition is None:
        return items
    kept = []
    for index, item in enumerate(items):
        try:
            if step_input.condition.evaluate(item):
                kept.append(item)
        except ConditionError as exc:
            raise StreamError(
                f"condition {step_input.condition.text!r} on {step_input.label} failed on "
                f"item {index}: {exc}"
            ) from None
    return kept


def sink_count(output: dict[str, Any], taken: int) -> int:
    """How many items a sink reports it wrote (``written`` or ``count``), else ``taken``."""
    for key in ("written", "count"):
        value = output.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return taken
