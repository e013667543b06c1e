"""Validation of workflow definitions: pure, linear in nodes + connections, no server needed.

:func:`validate_workflow` runs every check and reports every problem at once: the raised
:class:`PluginError` carries the code of the first problem, a message listing them all (up to
ten), and ``details["problems"]`` with each one's code and message. The registry runs the same
function on registration and on every modification, so nothing invalid is ever stored.

Checks, in order:

* ids: ``workflow_id``, node ids and connection ids are non-empty ASCII identifiers
  (letters, digits, ``_ . -``; at most 128 characters), node and connection ids unique;
* nodes: a ``plugin_id``; unique, non-empty port names; reserved configuration keys valid;
* connections: both ends exist (``NodeNotFound``); ports are declared where the node declares
  ports (``InvalidConnection``); conditions only on Control connections and valid CEL
  (``InvalidConnection``); no two DataFlow connections deliver to the same input;
* no cycle over DataFlow, Control and Dependency connections, self-loops included
  (``CircularDependency``, naming the cycle);
* the mode suits the graph (``ExecutionModeNotSupported``): Event connections need
  EventDriven; EventDriven needs a Source node, Streaming exactly one;
* size limits (``InvalidWorkflowStructure``): nodes, connections, and the definition's
  compact JSON size.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.conditions import Condition, ConditionError, compile_condition
from engine.engine_nodes import ENGINE_NODE_MODELS, is_engine_node, parse_config
from engine.errors import PluginError, PluginErrorCode
from engine.graph import ORDERING_KINDS, Edge, Graph
from engine.map_node import map_problems
from engine.models import (
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.options import GLOBAL_ONLY_KEYS, RESERVED_KEYS, global_options, node_options

MAX_NODES = 10_000
MAX_CONNECTIONS = 50_000
# Compact JSON (fields at their defaults left out). Every execution carries its definition in
# its start event, whose payload Temporal caps at 2 MB; the rest is for the input data.
MAX_DEFINITION_BYTES = 1_200_000
MAX_ID_LENGTH = 128
_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_MAX_REPORTED = 10

Code = PluginErrorCode
_Add = Callable[[PluginErrorCode, str], None]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a definition."""

    code: PluginErrorCode
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def validate_workflow(workflow: PluginWorkflow) -> None:
    """Check a definition completely, without a server.

    Raises:
        PluginError: the first problem's code; the message lists every problem found.
    """
    compile_workflow(workflow)


def compile_workflow(workflow: PluginWorkflow, *, check_maps: bool = True) -> Graph:
    """Validate a definition and compile it for the scheduler.

    ``check_maps=False`` compiles one item's graph of a Splitter map (its splitter and
    body, without the aggregator that ends the map).

    Raises:
        PluginError: as :func:`validate_workflow`.
    """
    problems: list[Problem] = []
    graph = _build(workflow, problems, check_maps)
    if not problems:
        _check_cycles(graph, problems)
    if not problems:
        size = len(workflow.model_dump_json(exclude_defaults=True))
        if size > MAX_DEFINITION_BYTES:
            problems.append(
                Problem(
                    Code.InvalidWorkflowStructure,
                    f"the definition is {size:,} bytes of JSON; the limit is "
                    f"{MAX_DEFINITION_BYTES:,} (it travels with every execution)",
                )
            )
    if problems:
        raise _as_error(workflow, problems)
    return graph


def check_id(kind: str, value: str) -> str | None:
    """The reason ``value`` is not a valid id, or None if it is."""
    if not isinstance(value, str) or not value:
        return f"{kind} is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"{kind} '{value[:40]}...' is longer than {MAX_ID_LENGTH} characters"
    if not _ID_PATTERN.fullmatch(value):
        return (
            f"{kind} {value!r} may only contain ASCII letters, digits, '_', '.' and '-' "
            "and must not start with '.' or '-'"
        )
    return None


def _build(workflow: PluginWorkflow, problems: list[Problem], check_maps: bool = True) -> Graph:
    def add(code: PluginErrorCode, message: str) -> None:
        problems.append(Problem(code, message))

    if reason := check_id("workflow_id", workflow.workflow_id):
        add(Code.InvalidWorkflowStructure, reason)
    if len(workflow.nodes) > MAX_NODES:
        add(Code.InvalidWorkflowStructure, f"{len(workflow.nodes)} nodes; the limit is {MAX_NODES}")
        return Graph(workflow)
    if len(workflow.connections) > MAX_CONNECTIONS:
        add(
            Code.InvalidWorkflowStructure,
            f"{len(workflow.connections)} connections; the limit is {MAX_CONNECTIONS}",
        )
        return Graph(workflow)
    try:
        global_options(workflow.global_configuration)
        node_options(workflow.global_configuration, {})
    except ValueError as exc:
        add(Code.InvalidWorkflowStructure, f"global_configuration: {exc}")

    graph = Graph(workflow)
    for index, node in enumerate(workflow.nodes):
        _check_node(index, node, graph, add)

    seen_connection_ids: set[str] = set()
    seen_edges: set[tuple[str, str, str, str, ConnectionType]] = set()
    input_keys: dict[tuple[str, str], str] = {}
    for index, conn in enumerate(workflow.connections):
        edge = _check_connection(index, conn, graph, add, seen_connection_ids, seen_edges)
        if edge is None:
            continue
        if edge.kind is ConnectionType.DataFlow:
            key = (edge.target, edge.input_key)
            if key in input_keys:
                add(
                    Code.InvalidConnection,
                    f"{conn.label()} and {input_keys[key]} both deliver to input "
                    f"'{edge.input_key}' of node '{edge.target}'; give them different "
                    "target ports",
                )
                continue
            input_keys[key] = conn.label()
        if edge.kind is ConnectionType.Event:
            graph.event_edges.append(edge)
        else:
            graph.outgoing[edge.source].append(edge)
            graph.incoming[edge.target].append(edge)

    _check_mode(workflow, graph, add)
    if check_maps and not problems:
        _check_maps(workflow, add)
    return graph


def _check_node(index: int, node: WorkflowNode, graph: Graph, add: _Add) -> None:
    where = f"node '{node.node_id}'" if node.node_id else f"node #{index}"
    if reason := check_id("node_id", node.node_id):
        add(Code.InvalidWorkflowStructure, f"{where}: {reason}")
    elif node.node_id in graph.nodes:
        add(Code.InvalidWorkflowStructure, f"duplicate node_id '{node.node_id}'")
    else:
        graph.nodes[node.node_id] = node
        graph.position[node.node_id] = index
        graph.incoming[node.node_id] = []
        graph.outgoing[node.node_id] = []
    if not node.plugin_id:
        add(Code.InvalidWorkflowStructure, f"{where} has no plugin_id")
    for kind, ports in (("input_ports", node.input_ports), ("output_ports", node.output_ports)):
        if any(not p for p in ports):
            add(Code.InvalidWorkflowStructure, f"{where}: {kind} contains an empty name")
        if len(set(ports)) != len(ports):
            add(Code.InvalidWorkflowStructure, f"{where}: {kind} contains duplicates")
    misplaced = sorted(GLOBAL_ONLY_KEYS & node.configuration.keys())
    if misplaced:
        add(
            Code.InvalidWorkflowStructure,
            f"{where}: {', '.join(misplaced)} belongs in global_configuration",
        )
    try:
        node_options(graph.workflow.global_configuration, node.configuration)
    except ValueError as exc:
        add(Code.InvalidWorkflowStructure, f"{where} configuration: {exc}")
    if is_engine_node(node.plugin_id):
        own = {k: v for k, v in node.configuration.items() if k not in RESERVED_KEYS}
        model = ENGINE_NODE_MODELS[node.plugin_id]
        unknown = sorted(set(own) - set(model.model_fields))
        if unknown:
            add(
                Code.InvalidWorkflowStructure,
                f"{where} ({node.plugin_id}) configuration: unknown field(s) {', '.join(unknown)}",
            )
        else:
            try:
                parse_config(node.plugin_id, node.node_id, node.configuration)
            except PluginError as exc:
                add(Code.InvalidWorkflowStructure, exc.message)


def _check_connection(
    index: int,
    conn: WorkflowConnection,
    graph: Graph,
    add: _Add,
    seen_ids: set[str],
    seen_edges: set[tuple[str, str, str, str, ConnectionType]],
) -> Edge | None:
    label = conn.label() if conn.source_node or conn.connection_id else f"connection #{index}"
    ok = True
    if conn.connection_id:
        if reason := check_id("connection_id", conn.connection_id):
            add(Code.InvalidWorkflowStructure, f"{label}: {reason}")
            ok = False
        elif conn.connection_id in seen_ids:
            add(Code.InvalidWorkflowStructure, f"duplicate connection_id '{conn.connection_id}'")
            ok = False
        seen_ids.add(conn.connection_id)
    for end, node_id in (("source_node", conn.source_node), ("target_node", conn.target_node)):
        if not node_id:
            add(Code.NodeNotFound, f"{label} has no {end}")
            ok = False
        elif node_id not in graph.nodes:
            add(Code.NodeNotFound, f"{label}: {end} '{node_id}' is not a node of the workflow")
            ok = False
    if not ok:
        return None

    source, target = graph.nodes[conn.source_node], graph.nodes[conn.target_node]
    if conn.source_port and source.output_ports and conn.source_port not in source.output_ports:
        add(
            Code.InvalidConnection,
            f"{label}: node '{source.node_id}' has no output port '{conn.source_port}' "
            f"(declared: {', '.join(source.output_ports)})",
        )
        ok = False
    if conn.target_port and target.input_ports and conn.target_port not in target.input_ports:
        add(
            Code.InvalidConnection,
            f"{label}: node '{target.node_id}' has no input port '{conn.target_port}' "
            f"(declared: {', '.join(target.input_ports)})",
        )
        ok = False
    if conn.connection_type in ORDERING_KINDS and conn.source_node == conn.target_node:
        add(
            Code.CircularDependency,
            f"{label} connects node '{conn.source_node}' to itself (cycle: "
            f"{conn.source_node} -> {conn.source_node})",
        )
        ok = False
    identity = (
        conn.source_node,
        conn.source_port,
        conn.target_node,
        conn.target_port,
        conn.connection_type,
    )
    if identity in seen_edges:
        add(Code.InvalidConnection, f"{label} duplicates an earlier connection")
        ok = False
    seen_edges.add(identity)

    route = conn.properties.get("on", "success")
    if route not in ("success", "error"):
        add(
            Code.InvalidConnection,
            f"{label}: properties.on must be 'success' or 'error', got {route!r}",
        )
        ok = False
    if "default" in conn.properties:
        if (
            conn.properties["default"] is not True
            or conn.connection_type is not ConnectionType.Control
        ):
            add(
                Code.InvalidConnection,
                f"{label}: properties.default must be true, on a Control connection",
            )
            ok = False
        elif "condition" in conn.properties:
            add(Code.InvalidConnection, f"{label}: a default connection has no condition")
            ok = False
    condition: Condition | None = None
    if "condition" in conn.properties:
        if conn.connection_type is not ConnectionType.Control:
            add(
                Code.InvalidConnection,
                f"{label}: conditions are only evaluated on Control connections, "
                f"not {conn.connection_type.name}",
            )
            ok = False
        else:
            try:
                condition = compile_condition(conn.properties["condition"])
            except ConditionError as exc:
                add(Code.InvalidConnection, f"{label}: condition {exc}")
                ok = False
    return Edge(index, conn, condition) if ok else None


def _check_maps(workflow: PluginWorkflow, add: _Add) -> None:
    for problem in map_problems(workflow):
        add(Code.InvalidWorkflowStructure, problem)


def _check_mode(workflow: PluginWorkflow, graph: Graph, add: _Add) -> None:
    mode = workflow.execution_mode
    if graph.event_edges and mode is not WorkflowExecutionMode.EventDriven:
        add(
            Code.ExecutionModeNotSupported,
            f"{graph.event_edges[0].connection.label()} is an Event connection, which only "
            f"EventDriven mode routes; the workflow is {mode.name}",
        )
    sources = [n for n in graph.nodes.values() if n.node_type is WorkflowNodeType.Source]
    if mode is WorkflowExecutionMode.Streaming and len(sources) > 1:
        add(
            Code.ExecutionModeNotSupported,
            "Streaming mode runs one Source node per workflow; this one has "
            f"{len(sources)} ({', '.join(n.node_id for n in sources)})",
        )
    needs_source = (WorkflowExecutionMode.EventDriven, WorkflowExecutionMode.Streaming)
    if (
        mode in needs_source
        and graph.nodes
        and not any(n.node_type is WorkflowNodeType.Source for n in graph.nodes.values())
    ):
        add(
            Code.ExecutionModeNotSupported,
            f"{mode.name} mode needs a Source node to produce "
            f"{'events' if mode is WorkflowExecutionMode.EventDriven else 'items'}",
        )


def _check_cycles(graph: Graph, problems: list[Problem]) -> None:
    """Kahn's algorithm; if nodes remain, walk back from one of them to name a cycle."""
    indegree = {node_id: len(edges) for node_id, edges in graph.incoming.items()}
    queue = [node_id for node_id, degree in indegree.items() if degree == 0]
    visited = 0
    while queue:
        node_id = queue.pop()
        visited += 1
        for edge in graph.outgoing[node_id]:
            indegree[edge.target] -= 1
            if indegree[edge.target] == 0:
                queue.append(edge.target)
    if visited == len(indegree):
        return
    # Every remaining node has an incoming edge from another remaining node, so walking
    # backwards from any of them must revisit a node: that closes a cycle.
    remaining = {node_id for node_id, degree in indegree.items() if degree > 0}
    start = min(remaining, key=graph.position.__getitem__)
    walk = [start]
    seen_at = {start: 0}
    current = start
    while True:
        edge = next(e for e in graph.incoming[current] if e.source in remaining)
        current = edge.source
        if current in seen_at:
            cycle = list(reversed(walk[seen_at[current] :]))
            # Start the cycle at its earliest node, so the message is stable and readable.
            first = cycle.index(min(cycle, key=graph.position.__getitem__))
            cycle = cycle[first:] + cycle[:first]
            cycle.append(cycle[0])
            break
        seen_at[current] = len(walk)
        walk.append(current)
    problems.append(
        Problem(
            Code.CircularDependency,
            f"circular dependency: {' -> '.join(cycle)}",
            {"cycle": cycle},
        )
    )


def _as_error(workflow: PluginWorkflow, problems: list[Problem]) -> PluginError:
    name = f"workflow '{workflow.workflow_id}'" if workflow.workflow_id else "workflow"
    shown = "; ".join(p.message for p in problems[:_MAX_REPORTED])
    if len(problems) > _MAX_REPORTED:
        shown += f"; and {len(problems) - _MAX_REPORTED} more"
    prefix = f"{name} is invalid" if len(problems) == 1 else f"{name} has {len(problems)} problems"
    details: dict[str, Any] = {
        "problems": [{"code": p.code.value, "message": p.message} for p in problems]
    }
    for problem in problems:
        details.update(problem.details)
    return PluginError(problems[0].code, f"{prefix}: {shown}", details)
