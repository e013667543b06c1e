"""A seeded generator of random valid definitions and a reference model of what a run of
one must do.

Definitions are random DAGs of 3-9 ``effect`` nodes listed in an order other than their
topological one, with DataFlow (whole outputs or a port of them, under the source's id or a
named target port), conditional and plain Control, and Dependency connections, declared
ports on some nodes, failing first attempts on some, in Sequential, Parallel or Conditional
mode. The reference model is written from the README's graph semantics, independently of
engine.runtime.scheduler: which nodes complete and which are skipped, each node's inputs, the
result nodes, and for Sequential mode the start order.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any

from engine import ConnectionType, PluginWorkflow, WorkflowConnection, WorkflowExecutionMode
from engine.language.models import WorkflowExecutionStatus
from tests.chaos.invariants import Expected
from tests.helpers.builders import edge, node, workflow

# CEL conditions with the same test in Python, over the emitted keys v, w and tags.
CONDITIONS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "v > 4": lambda o: o["v"] > 4,
    "v % 2 == 0": lambda o: o["v"] % 2 == 0,
    "w == 'a'": lambda o: o["w"] == "a",
    "v < 7 && w != 'b'": lambda o: o["v"] < 7 and o["w"] != "b",
    "'x' in tags": lambda o: "x" in o["tags"],
    "size(tags) >= 2": lambda o: len(o["tags"]) >= 2,
}
PORTS = ("v", "w", "tags")
MODES = (
    WorkflowExecutionMode.Sequential,
    WorkflowExecutionMode.Parallel,
    WorkflowExecutionMode.Conditional,
)


def random_definition(rng: random.Random, workflow_id: str) -> PluginWorkflow:
    count = rng.randint(3, 9)
    topological = [f"n{i}" for i in range(count)]
    connections = [
        _random_connection(rng, source, target)
        for j, target in enumerate(topological)
        for source in topological[:j]
        if rng.random() < 0.35
    ]
    nodes = []
    for node_id in rng.sample(topological, count):
        config: dict[str, Any] = {
            "emit": {
                "v": rng.randint(0, 9),
                "w": rng.choice("ab"),
                "tags": sorted(rng.sample(["x", "y", "z"], rng.randint(0, 3))),
            }
        }
        if rng.random() < 0.15:
            config["fail_attempts"] = 1
        if rng.random() < 0.3:
            config["dedup"] = True
        if rng.random() < 0.2:
            config["seconds"] = 0.2
        plugin = rng.choice(["effect", "effect", "effect_blocking"])
        new = node(node_id, plugin, **config)
        if rng.random() < 0.3:
            new.output_ports = list(PORTS)
        ports = sorted({c.target_port for c in connections if c.target_node == node_id} - {""})
        if ports and rng.random() < 0.5:
            new.input_ports = ports
        nodes.append(new)
    return workflow(
        workflow_id,
        nodes,
        connections,
        mode=rng.choice(MODES),
        max_parallelism=rng.randint(1, 4),
        heartbeat_timeout=2,
        retry={"initial_interval": 0.1, "maximum_interval": 0.5},
    )


def _random_connection(rng: random.Random, source: str, target: str) -> WorkflowConnection:
    kind = rng.choices(["data", "control", "dependency"], [5, 3, 2])[0]
    if kind == "data":
        return edge(
            source,
            target,
            source_port=rng.choice(["", "", *PORTS]),
            target_port=rng.choice(["", f"from_{source}"]),
        )
    if kind == "control":
        condition = rng.choice([*CONDITIONS, None])
        return edge(source, target, ConnectionType.Control, condition=condition)
    return edge(source, target, ConnectionType.Dependency)


def expected_run(definition: PluginWorkflow, input_data: dict[str, Any]) -> Expected:
    """What the reference semantics say a run of ``definition`` ends with."""
    position = {n.node_id: i for i, n in enumerate(definition.nodes)}
    emitted = {n.node_id: n.configuration["emit"] for n in definition.nodes}
    incoming: dict[str, list[WorkflowConnection]] = {n: [] for n in position}
    outgoing: dict[str, list[WorkflowConnection]] = {n: [] for n in position}
    for connection in definition.connections:
        incoming[connection.target_node].append(connection)
        outgoing[connection.source_node].append(connection)
    unresolved = {n: len(incoming[n]) for n in position}
    taken: dict[int, bool] = {}
    status: dict[str, str] = {}
    inputs: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    ready = [position[n] for n in position if not incoming[n]]
    heapq.heapify(ready)
    names = [n.node_id for n in definition.nodes]

    def resolve(connection: WorkflowConnection, is_taken: bool) -> None:
        taken[id(connection)] = is_taken
        target = connection.target_node
        unresolved[target] -= 1
        if unresolved[target]:
            return
        if any(taken[id(c)] for c in incoming[target]):
            heapq.heappush(ready, position[target])
        else:
            status[target] = "skipped"
            for onward in outgoing[target]:
                resolve(onward, False)

    while ready:
        node_id = names[heapq.heappop(ready)]
        order.append(node_id)
        status[node_id] = "completed"
        data = [c for c in incoming[node_id] if c.connection_type is ConnectionType.DataFlow]
        inputs[node_id] = (
            {_key(c): _carried(c, emitted[c.source_node]) for c in data if taken[id(c)]}
            if data
            else dict(input_data)
        )
        for connection in outgoing[node_id]:
            condition = connection.properties.get("condition")
            resolve(connection, condition is None or CONDITIONS[condition](emitted[node_id]))
    results = [
        n
        for n in position
        if status[n] == "completed"
        and not any(c.connection_type is ConnectionType.DataFlow for c in outgoing[n])
    ]
    sequential = definition.execution_mode is WorkflowExecutionMode.Sequential
    return Expected(
        WorkflowExecutionStatus.Completed,
        nodes=status,
        inputs=inputs,
        results=results,
        order=order if sequential else None,
    )


def _key(connection: WorkflowConnection) -> str:
    return connection.target_port or connection.source_node


def _carried(connection: WorkflowConnection, emitted: dict[str, Any]) -> Any:
    return emitted[connection.source_port] if connection.source_port else connection.source_node
