"""Compact builders for test definitions."""

from __future__ import annotations

from typing import Any

from engine import (
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowNode,
)


def node(node_id: str, plugin_id: str = "echo", **config: Any) -> WorkflowNode:
    """A Processor node running ``plugin_id`` with ``config`` as its configuration."""
    return WorkflowNode(node_id=node_id, name=node_id, plugin_id=plugin_id, configuration=config)


def edge(
    source: str,
    target: str,
    kind: ConnectionType = ConnectionType.DataFlow,
    *,
    condition: str | None = None,
    source_port: str = "",
    target_port: str = "",
) -> WorkflowConnection:
    """A connection; ``condition`` makes it a conditional Control edge."""
    if condition is not None:
        kind = ConnectionType.Control
    return WorkflowConnection(
        source_node=source,
        target_node=target,
        connection_type=kind,
        source_port=source_port,
        target_port=target_port,
        properties={"condition": condition} if condition is not None else {},
    )


def workflow(
    workflow_id: str,
    nodes: list[WorkflowNode],
    connections: list[WorkflowConnection] | None = None,
    mode: WorkflowExecutionMode = WorkflowExecutionMode.Parallel,
    **global_configuration: Any,
) -> PluginWorkflow:
    """A definition from nodes and connections."""
    return PluginWorkflow(
        workflow_id=workflow_id,
        name=workflow_id,
        execution_mode=mode,
        nodes=nodes,
        connections=connections or [],
        global_configuration=global_configuration,
    )


def chain(workflow_id: str, length: int, plugin_id: str = "echo", **kw: Any) -> PluginWorkflow:
    """n0 -> n1 -> ... -> n(length-1)."""
    nodes = [node(f"n{i}", plugin_id) for i in range(length)]
    edges = [edge(f"n{i}", f"n{i + 1}") for i in range(length - 1)]
    return workflow(workflow_id, nodes, edges, **kw)
