"""The graph one EventDriven event runs through (a *pass*), as a pure function.

A pass is a small batch run: the event's source node counts as completed with the event as
its output, and everything downstream of it runs under the batch rules (conditions, skips,
joins, retries). Routing from the source:

* along the source's outgoing connections. An Event connection whose
  ``properties.event_type`` is set only carries events of that type (otherwise it is not
  taken); Event connections behave as Dependency connections inside a pass. DataFlow
  connections from the source carry the event; Control conditions are evaluated on it.
* a source with no outgoing connection feeds every root node (a node without incoming
  connections that is not a Source): the spec's event example has no connection from its
  file watcher, and its validator receives every file.

Nodes without incoming DataFlow connections receive the event as their ``inputs``.
"""

from __future__ import annotations

from engine.language.models import (
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowNodeType,
)


def pass_workflow(workflow: PluginWorkflow, source_id: str, event_type: str) -> PluginWorkflow:
    """The definition of one pass for an event of ``event_type`` from ``source_id``."""
    sources = {n.node_id for n in workflow.nodes if n.node_type is WorkflowNodeType.Source}
    outgoing: dict[str, list[WorkflowConnection]] = {n.node_id: [] for n in workflow.nodes}
    incoming_count = dict.fromkeys(outgoing, 0)
    for conn in workflow.connections:
        if conn.source_node in outgoing and conn.target_node in outgoing:
            outgoing[conn.source_node].append(conn)
            incoming_count[conn.target_node] += 1

    entry = list(outgoing.get(source_id, []))
    if not entry:
        entry = [
            WorkflowConnection(
                source_node=source_id,
                target_node=node.node_id,
                connection_type=ConnectionType.Dependency,
            )
            for node in workflow.nodes
            if node.node_id not in sources and incoming_count[node.node_id] == 0
        ]

    # Everything reachable from the source, in definition order; other sources excluded.
    reached = {source_id}
    frontier = [c.target_node for c in entry]
    while frontier:
        node_id = frontier.pop()
        if node_id in reached or node_id in sources:
            continue
        reached.add(node_id)
        frontier.extend(c.target_node for c in outgoing[node_id])

    connections = [_in_pass(c, event_type) for c in entry if c.target_node in reached]
    for conn in workflow.connections:
        if conn.source_node != source_id and {conn.source_node, conn.target_node} <= reached:
            connections.append(_in_pass(conn, None))
    return PluginWorkflow(
        workflow_id=workflow.workflow_id,
        name=workflow.name,
        execution_mode=WorkflowExecutionMode.Parallel,
        nodes=[n for n in workflow.nodes if n.node_id in reached],
        connections=connections,
        global_configuration=workflow.global_configuration,
        version=workflow.version,
    )


def _in_pass(conn: WorkflowConnection, event_type: str | None) -> WorkflowConnection:
    if conn.connection_type is not ConnectionType.Event:
        return conn
    wanted = conn.properties.get("event_type")
    if event_type is not None and wanted not in (None, "", event_type):
        # Not this event's route: an edge that is never taken, so its targets are skipped.
        return conn.model_copy(
            update={"connection_type": ConnectionType.Control, "properties": {"condition": "false"}}
        )
    return conn.model_copy(update={"connection_type": ConnectionType.Dependency, "properties": {}})
