"""The deterministic heart of a batch run: which nodes are ready, which are skipped.

Pure state machine over a compiled :class:`~engine.graph.Graph`; no I/O, no clock, no
Temporal. Rules (the README's "Graph semantics" section says the same):

* An edge is *unresolved* until its source node finishes. When the source completes, DataFlow
  and Dependency edges are *taken*; a Control edge is taken if it has no condition or its
  condition is true on the source's output. When the source is skipped, its edges are
  *not taken*.
* A node becomes ready when all its incoming edges are resolved and at least one is taken; if
  none is taken it is skipped, and the skip propagates. A join therefore runs once, after all
  its inputs have resolved, never early and never twice.
* Ready nodes are started lowest definition position first (Kahn's algorithm with a priority
  queue), so Sequential mode runs a topological order with ties broken by ``nodes`` order.
* A DataFlow edge with a ``source_port`` carries that key of the source's output; the key
  must be present. Without a port it carries the whole output.
"""

from __future__ import annotations

import heapq
from enum import StrEnum
from typing import Any

from engine.conditions import ConditionError
from engine.graph import Edge, Graph
from engine.models import ConnectionType


class NodeStatus(StrEnum):
    """Per-node status as reported in ``node_states``."""

    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self not in (NodeStatus.pending, NodeStatus.running)


class RoutingError(Exception):
    """A completed node's output cannot be routed (bad condition data, missing port)."""


class Scheduler:
    """Tracks node and edge resolution for one run of a graph."""

    def __init__(self, graph: Graph, completed: dict[str, dict[str, Any]] | None = None) -> None:
        """Args:
        graph: The compiled graph.
        completed: Nodes that count as completed from the start, with their outputs (an
            EventDriven pass starts with its source node completed, its output the event).
        """
        self.graph = graph
        self.status: dict[str, NodeStatus] = dict.fromkeys(graph.nodes, NodeStatus.pending)
        self.outputs: dict[str, dict[str, Any]] = {}
        self._taken: dict[int, bool] = {}  # edge index -> taken, once resolved
        self._unresolved = {n: len(graph.incoming[n]) for n in graph.nodes}
        self._taken_in = dict.fromkeys(graph.nodes, 0)
        self._ready: list[int] = []  # heap of definition positions
        self._finished = 0  # nodes in a final status; keeps progress and completion O(1)
        done = completed or {}
        for node_id in graph.nodes:
            if self._unresolved[node_id] == 0 and node_id not in done:
                heapq.heappush(self._ready, graph.position[node_id])
        for node_id, output in done.items():
            self.complete(node_id, output)

    # -- queries -----------------------------------------------------------------------

    def ready(self) -> list[str]:
        """Ready nodes, lowest position first (without removing them)."""
        order = self.graph.node_ids
        return [order[p] for p in sorted(self._ready)]

    def has_ready(self) -> bool:
        return bool(self._ready)

    def is_finished(self) -> bool:
        """True when every node has reached a final status."""
        return self._finished == len(self.status)

    def running(self) -> list[str]:
        return [n for n, s in self.status.items() if s is NodeStatus.running]

    def progress(self) -> float:
        """Share of nodes in a final status; never decreases."""
        total = len(self.status)
        return self._finished / total if total else 1.0

    def inputs_for(self, node_id: str, input_data: dict[str, Any]) -> dict[str, Any]:
        """A node's ``inputs``: one entry per taken DataFlow edge, or ``input_data``."""
        if not self.graph.has_data_inputs(node_id):
            return dict(input_data)
        inputs: dict[str, Any] = {}
        for edge in self.graph.incoming[node_id]:
            if edge.kind is ConnectionType.DataFlow and self._taken.get(edge.index):
                inputs[edge.input_key] = self._carried(edge)
        return inputs

    def results(self) -> dict[str, dict[str, Any]]:
        """Outputs of completed nodes with no outgoing DataFlow edge, by node id."""
        return {
            node_id: self.outputs[node_id]
            for node_id in self.graph.nodes
            if node_id in self.outputs and self.graph.is_result_node(node_id)
        }

    # -- transitions -------------------------------------------------------------------

    def take_next(self) -> str:
        """Remove and return the ready node with the lowest position; mark it running."""
        node_id = self.graph.node_ids[heapq.heappop(self._ready)]
        self.status[node_id] = NodeStatus.running
        return node_id

    def complete(self, node_id: str, output: dict[str, Any]) -> list[str]:
        """Record a node's output and resolve its outgoing edges.

        Returns:
            Nodes skipped as a consequence, in the order they were skipped.

        Raises:
            RoutingError: a condition failed to evaluate or a port is missing from the
                output; the node's status is left running so the caller can fail it.
        """
        decisions = [
            (edge, self._edge_taken(edge, output)) for edge in self.graph.outgoing[node_id]
        ]
        self._set(node_id, NodeStatus.completed)
        self.outputs[node_id] = output
        skipped: list[str] = []
        for edge, taken in decisions:
            self._resolve(edge, taken, skipped)
        return skipped

    def fail(self, node_id: str) -> None:
        self._set(node_id, NodeStatus.failed)

    def cancel(self, node_id: str) -> None:
        self._set(node_id, NodeStatus.cancelled)

    def cancel_pending(self) -> list[str]:
        """Mark every node that has not started as cancelled; return them."""
        cancelled = [n for n, s in self.status.items() if s is NodeStatus.pending]
        for node_id in cancelled:
            self._set(node_id, NodeStatus.cancelled)
        self._ready.clear()
        return cancelled

    # -- internals ---------------------------------------------------------------------

    def _edge_taken(self, edge: Edge, output: dict[str, Any]) -> bool:
        port = edge.connection.source_port
        if edge.kind is ConnectionType.DataFlow and port and port not in output:
            raise RoutingError(
                f"output of node '{edge.source}' has no key '{port}' for {edge.connection.label()}"
                f" (keys: {', '.join(sorted(output)) or 'none'})"
            )
        if edge.condition is None:
            return True
        try:
            return edge.condition.evaluate(output)
        except ConditionError as exc:
            raise RoutingError(
                f"condition {edge.condition.text!r} on {edge.connection.label()} "
                f"failed on the output of node '{edge.source}': {exc}"
            ) from None

    def _resolve(self, edge: Edge, taken: bool, skipped: list[str]) -> None:
        # Worklist instead of recursion: skip chains can be as long as the graph.
        work = [(edge, taken)]
        while work:
            current, is_taken = work.pop()
            self._taken[current.index] = is_taken
            target = current.target
            if self.status[target].is_finished:
                continue  # given as completed from the start
            self._unresolved[target] -= 1
            if is_taken:
                self._taken_in[target] += 1
            if self._unresolved[target] > 0:
                continue
            if self._taken_in[target] > 0:
                heapq.heappush(self._ready, self.graph.position[target])
            else:
                self._set(target, NodeStatus.skipped)
                skipped.append(target)
                work.extend((e, False) for e in reversed(self.graph.outgoing[target]))

    def _set(self, node_id: str, status: NodeStatus) -> None:
        if not self.status[node_id].is_finished and status.is_finished:
            self._finished += 1
        self.status[node_id] = status

    def _carried(self, edge: Edge) -> Any:
        output = self.outputs[edge.source]
        port = edge.connection.source_port
        return output[port] if port else output
