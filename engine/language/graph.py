"""A validated workflow compiled for scheduling: adjacency lists in definition order.

Built once per run by :func:`engine.language.validation.compile_workflow`. Everything is a list or
an
insertion-ordered dict, so iteration order is the definition's order in every process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.language.conditions import Condition
from engine.language.models import ConnectionType, PluginWorkflow, WorkflowConnection, WorkflowNode

# Edge kinds that order execution; Event connections only route events (EventDriven mode).
ORDERING_KINDS = (ConnectionType.DataFlow, ConnectionType.Control, ConnectionType.Dependency)


@dataclass(frozen=True, slots=True)
class Edge:
    """One connection, compiled: its index in ``connections`` and, for Control, its condition."""

    index: int
    connection: WorkflowConnection
    condition: Condition | None

    @property
    def source(self) -> str:
        return self.connection.source_node

    @property
    def target(self) -> str:
        return self.connection.target_node

    @property
    def kind(self) -> ConnectionType:
        return self.connection.connection_type

    @property
    def on_error(self) -> bool:
        """An error route: taken when the source fails, carrying its error."""
        return self.connection.properties.get("on") == "error"

    @property
    def is_default(self) -> bool:
        """A Decision's default route: taken when none of the source's conditions is."""
        return self.connection.properties.get("default") is True

    @property
    def input_key(self) -> str:
        """Where a DataFlow edge lands in the target's ``inputs``: its port or source id."""
        return self.connection.target_port or self.connection.source_node


@dataclass(slots=True)
class Graph:
    """Nodes in definition order with their ordering edges in and out."""

    workflow: PluginWorkflow
    nodes: dict[str, WorkflowNode] = field(default_factory=dict)
    position: dict[str, int] = field(default_factory=dict)
    incoming: dict[str, list[Edge]] = field(default_factory=dict)
    outgoing: dict[str, list[Edge]] = field(default_factory=dict)
    event_edges: list[Edge] = field(default_factory=list)
    _order: list[str] = field(default_factory=list)

    @property
    def node_ids(self) -> list[str]:
        """Node ids in definition order (index = position). Cached: the scheduler reads it
        on every step."""
        if len(self._order) != len(self.nodes):
            self._order = list(self.nodes)
        return self._order

    def has_data_inputs(self, node_id: str) -> bool:
        """True if any DataFlow connection points at the node."""
        return any(e.kind is ConnectionType.DataFlow for e in self.incoming[node_id])

    def is_result_node(self, node_id: str) -> bool:
        """True if no DataFlow connection leaves the node: its output is a run result."""
        return not any(e.kind is ConnectionType.DataFlow for e in self.outgoing[node_id])
