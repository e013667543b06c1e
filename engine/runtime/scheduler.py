"""The deterministic heart of a batch run: which nodes are ready, which are skipped.

Pure state machine over a compiled :class:`~engine.language.graph.Graph`; no I/O, no clock, no
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
* A Control edge with ``properties.default`` is taken exactly when none of its source's
  conditional Control edges is (a Decision's "else").
* An edge with ``properties.on = "error"`` is an error route: not taken when its source
  completes; when the source fails, the error routes are taken (carrying the error: type,
  message, attempts, node, input) and the other edges are not, and the run goes on.
* A failed node marked ``optional`` lets the run go on as if it had produced nothing: its
  DataFlow edges are taken but carry nothing (the input is absent), its Dependency and
  unconditional Control edges are taken, its conditional ones are not.
"""

from __future__ import annotations

import heapq
from enum import StrEnum
from typing import Any

from engine.language.conditions import ConditionError
from engine.language.graph import Edge, Graph
from engine.language.models import ConnectionType


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


def _always() -> bool:
    return True


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
        self.errors: dict[str, dict[str, Any]] = {}  # errors of failures routed onwards
        self._taken: dict[int, bool] = {}  # edge index -> taken, once resolved
        self.meter_conditions = _always
        self._unresolved = {n: len(graph.incoming[n]) for n in graph.nodes}
        self._taken_in = dict.fromkeys(graph.nodes, 0)
        self._ready: list[int] = []  # heap of definition positions
        self._finished = 0  # nodes in a final status; keeps progress and completion O(1)
        done = completed or {}
        for node_id in graph.nodes:
            if self._unresolved[node_id] == 0 and node_id not in done:
                heapq.heappush(self._ready, graph.position[node_id])
        for node_id in done:  # all done first, so none of them is made ready by another
            self._set(node_id, NodeStatus.completed)
        for node_id, output in done.items():
            self.complete(node_id, output)

    @classmethod
    def restore(
        cls,
        graph: Graph,
        status: dict[str, NodeStatus],
        outputs: dict[str, dict[str, Any]],
        errors: dict[str, dict[str, Any]],
        taken: dict[int, bool],
    ) -> Scheduler:
        """The scheduler of a run that stopped with no node running (continue-as-new): the
        statuses, outputs, routed errors and resolved edges of :meth:`snapshot` are all
        that defines it; the counters and the ready heap follow from them."""
        scheduler = cls.__new__(cls)
        scheduler.graph = graph
        scheduler.status = {node_id: status[node_id] for node_id in graph.nodes}
        scheduler.outputs = dict(outputs)
        scheduler.errors = dict(errors)
        scheduler._taken = dict(taken)
        scheduler.meter_conditions = _always
        scheduler._unresolved = {}
        scheduler._taken_in = {}
        scheduler._ready = []
        scheduler._finished = 0
        for node_id in graph.nodes:
            incoming = graph.incoming[node_id]
            scheduler._unresolved[node_id] = sum(1 for e in incoming if e.index not in taken)
            scheduler._taken_in[node_id] = sum(1 for e in incoming if taken.get(e.index))
            if scheduler.status[node_id].is_finished:
                scheduler._finished += 1
            elif scheduler._unresolved[node_id] == 0:
                # Pending with every incoming edge resolved, at least one taken (a node with
                # none taken would have been skipped), or a root.
                heapq.heappush(scheduler._ready, graph.position[node_id])
        return scheduler

    def snapshot(
        self,
    ) -> tuple[
        dict[str, NodeStatus], dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[int, bool]
    ]:
        """Statuses, outputs, routed errors and resolved edges (see :meth:`restore`)."""
        return dict(self.status), dict(self.outputs), dict(self.errors), dict(self._taken)

    def still_needed(self, node_id: str) -> bool:
        """Whether a node's output may still be read: it is a result, or a DataFlow edge
        from it leads to a node that has not finished."""
        if self.graph.is_result_node(node_id):
            return True
        return any(
            edge.kind is ConnectionType.DataFlow and not self.status[edge.target].is_finished
            for edge in self.graph.outgoing[node_id]
        )

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
            if edge.kind is not ConnectionType.DataFlow or not self._taken.get(edge.index):
                continue
            produced = self.errors if edge.on_error else self.outputs
            if edge.source in produced:  # a failed optional node produced nothing
                inputs[edge.input_key] = self._carried(edge, produced[edge.source])
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
        outgoing = self.graph.outgoing[node_id]
        decisions = [
            (edge, False if edge.on_error else self._edge_taken(edge, output))
            for edge in outgoing
            if not edge.is_default
        ]
        matched = any(taken for edge, taken in decisions if edge.condition is not None)
        decisions += [(edge, not matched) for edge in outgoing if edge.is_default]
        return self._completed(node_id, output, decisions)

    def _completed(
        self, node_id: str, output: dict[str, Any], decisions: list[tuple[Edge, bool]]
    ) -> list[str]:
        self._set(node_id, NodeStatus.completed)
        self.outputs[node_id] = output
        return self._resolve_all(decisions)

    def complete_map(
        self,
        splitter: str,
        output: dict[str, Any],
        body: list[str],
        aggregator: str,
        aggregated: dict[str, Any],
        *,
        check_entry: bool = True,
    ) -> list[str]:
        """A Splitter ran its whole map: its body and its aggregator are complete too, and
        the aggregator's outgoing edges resolve with ``aggregated``.

        The edges into the map were checked on each item (its conditions and ports decided
        which of the body's nodes ran for it); their targets are done, so they resolve as
        taken. ``check_entry`` evaluates them once more on the splitter's summary (counts
        and errors, no item), as runs did before the ``map-entry-edges`` patch: a condition
        or port about the item then failed the map after every item had run."""
        for node_id in [*body, aggregator]:
            self._set(node_id, NodeStatus.completed)
        if check_entry:
            skipped = self.complete(splitter, output)
        else:
            entry = [(edge, True) for edge in self.graph.outgoing[splitter]]
            skipped = self._completed(splitter, output, entry)
        return skipped + self.complete(aggregator, aggregated)

    def fail(
        self, node_id: str, error: dict[str, Any] | None = None, *, optional: bool = False
    ) -> list[str] | None:
        """Record a failure.

        Returns:
            None if the failure fails the run; otherwise (the node has error routes or is
            optional) the nodes skipped as a consequence, and the run goes on.

        Raises:
            RoutingError: a condition on an error route failed to evaluate.
        """
        outgoing = self.graph.outgoing[node_id]
        routes = [edge for edge in outgoing if edge.on_error]
        self._set(node_id, NodeStatus.failed)
        if not routes and not optional:
            return None
        payload = error or {}
        self.errors[node_id] = payload
        decisions = []
        for edge in outgoing:
            if edge.on_error:
                taken = self._edge_taken(edge, payload)
            elif routes:
                taken = False
            else:  # optional: on as if it produced nothing
                taken = edge.condition is None and not edge.is_default
            decisions.append((edge, taken))
        return self._resolve_all(decisions)

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
            return edge.condition.evaluate(output, metered=self.meter_conditions())
        except ConditionError as exc:
            raise RoutingError(
                f"condition {edge.condition.text!r} on {edge.connection.label()} "
                f"failed on the output of node '{edge.source}': {exc}"
            ) from None

    def _resolve_all(self, decisions: list[tuple[Edge, bool]]) -> list[str]:
        skipped: list[str] = []
        for edge, taken in decisions:
            self._resolve(edge, taken, skipped)
        return skipped

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

    def _carried(self, edge: Edge, produced: dict[str, Any]) -> Any:
        port = edge.connection.source_port
        return produced[port] if port else produced
