"""Validation of workflow definitions: pure, linear in nodes + connections, no server needed.

:func:`validate_workflow` runs every check and reports every problem at once: the raised
:class:`PluginError` carries the code of the first problem, a message listing them all (up to
ten), and ``details["problems"]`` with each one's code and message. Registration and every
modification run it (the registry entity in its update validator), so nothing invalid is ever
stored. The limits, with the reason for each, are listed in ``docs/LIMITS.md``.

Two sets of rules, because workflow code compiles definitions too (the determinism contract):
:func:`compile_workflow` runs inside workflow code, on start and on every replay of runs that
may have started releases ago, so its rules are the first release's and may only be relaxed.
:func:`validate_workflow` applies those plus the stricter registration rules: values, node
and connection counts, cycles through Event connections, and the strict condition rules
(:mod:`engine.language.conditions`). Tightening a registration rule never touches a run in flight or
a definition already stored; it applies to the next registration or modification.

Checks, in order:

* values (``InvalidWorkflowStructure``, before anything else looks at them): every
  configuration, ``properties``, ``global_configuration``, ``metadata`` and
  ``ui_properties`` is plain JSON (string keys, finite numbers, 64-bit integers, valid
  Unicode, no tuples, sets or objects) nested at most ``MAX_JSON_DEPTH`` levels; names and
  descriptions are valid Unicode; ``plugin_id`` is printable ASCII without spaces; port
  names follow the id rules;
* ids: ``workflow_id``, node ids and connection ids are non-empty ASCII identifiers
  (letters, digits, ``_ . -``; at most 128 characters), node and connection ids unique.
  Look-alikes that cannot be told apart by eye (Cyrillic ``\u0430`` for ``a``, ``é`` as one
  code point and as ``e`` plus a combining accent) are refused rather than normalised: two
  valid ids are equal only if they are the same bytes;
* nodes: a ``plugin_id``; unique, non-empty port names; reserved configuration keys valid;
* connections: both ends exist (``NodeNotFound``); ports are declared where the node declares
  ports (``InvalidConnection``; a node without declared ports takes any port name as an
  input or output key); conditions only on Control connections and valid CEL
  (``InvalidConnection``); no two DataFlow connections deliver to the same input;
* no cycle over connections of any type, self-loops included (``CircularDependency``, naming
  the cycle): an EventDriven pass runs Event connections as Dependency connections
  (:mod:`engine.runtime.passes`), so every pass through a cycle of them, feedback into a Source node
  included, would fail. (:func:`compile_workflow` only looks at DataFlow, Control and
  Dependency connections, as the first release did);
* the mode suits the graph (``ExecutionModeNotSupported``): Event connections need
  EventDriven; EventDriven needs a Source node, Streaming exactly one;
* size limits (``InvalidWorkflowStructure``): nodes and connections (registration only), and
  the definition's compact JSON size;
* compensations (registration only, ``InvalidWorkflowStructure``): see
  :mod:`engine.language.compensation`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.compensation import compensation_problems
from engine.language.conditions import Condition, ConditionError, compile_condition
from engine.language.engine_nodes import (
    ENGINE_NODE_MODELS,
    SPLIT,
    is_engine_node,
    parse_config,
)
from engine.language.graph import ORDERING_KINDS, Edge, Graph
from engine.language.maps import map_problems
from engine.language.models import (
    MAX_JSON_DEPTH,
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowNode,
    WorkflowNodeType,
    json_problem_and_count,
)
from engine.language.options import (
    GLOBAL_ONLY_KEYS,
    RESERVED_KEYS,
    execution_problem,
    global_options,
    node_options,
)

# Nodes of one definition. History does not bound them (a batch run continues as new past
# max_history_events, engine/temporal/workflow.py); what does is work inside workflow code:
# compiling
# and scheduling the graph at every start and replay (0.2 s for a 10,000-node chain on a
# loaded two-core machine, against the 2 s a workflow task may take), and the start payload
# (MAX_DEFINITION_BYTES).
MAX_NODES = 10_000
# Connections of one definition: five per node at the node limit. MAX_DEFINITION_BYTES
# usually binds first (a connection takes at least about 40 bytes of compact JSON).
MAX_CONNECTIONS = 50_000
# Compact JSON (fields at their defaults left out). Every execution carries its definition in
# its start event, whose payload Temporal caps at 2 MB; the rest is for the input data.
MAX_DEFINITION_BYTES = 1_200_000
# Ids end up in Temporal ids (at most MAX_TEMPORAL_ID_LENGTH): "<workflow_id>/run-<16 hex>"
# for executions, "<workflow_id>/definition@<task queue>" for the registry, node ids in
# activity and child workflow ids under the execution id.
MAX_ID_LENGTH = 128
# Temporal's limit on workflow ids: longer execution ids are refused before any call.
MAX_TEMPORAL_ID_LENGTH = 1000
# JSON values of a whole definition; every value takes at least two bytes of JSON text.
MAX_DEFINITION_VALUES = MAX_DEFINITION_BYTES // 2
_ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
# Printable ASCII without spaces: plugin ids name Python registrations, not Temporal ids.
_PLUGIN_ID_PATTERN = re.compile(r"[!-~]+")
_MAX_REPORTED = 10
# Details of a problem that name its node: in its entry of details["problems"].
_PER_PROBLEM = ("node_id", "plugin_id")

Code = PluginErrorCode
_Add = Callable[[PluginErrorCode, str], None]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a definition."""

    code: PluginErrorCode
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def validate_workflow(
    workflow: PluginWorkflow, *, more: Callable[[PluginWorkflow], list[Problem]] | None = None
) -> None:
    """Check a definition completely, without a server.

    Args:
        workflow: The definition.
        more: Further checks (the plugin catalog's, :mod:`engine.temporal.catalog`), run when the
            values are plain JSON and the definition is within the size limits; their
            problems are reported with the others.

    Raises:
        PluginError: the first problem's code; the message lists every problem found.
    """
    problems: list[Problem] = []
    _check_values(workflow, problems)
    if problems:
        # Nothing else looks at values that may be cyclic, deep or not JSON at all.
        raise problems_error(workflow, problems)
    _compile(workflow, strict=True, more=more)


def compile_workflow(workflow: PluginWorkflow, *, check_maps: bool = True) -> Graph:
    """Check a definition's structure and compile it for the scheduler, with the rules
    workflow code has always applied (see the module docstring; never tighten them).

    ``check_maps=False`` compiles one item's graph of a Splitter map (its splitter and
    body, without the aggregator that ends the map).

    Raises:
        PluginError: as :func:`validate_workflow`.
    """
    return _compile(workflow, strict=False, check_maps=check_maps)


def _compile(
    workflow: PluginWorkflow,
    *,
    strict: bool,
    check_maps: bool = True,
    more: Callable[[PluginWorkflow], list[Problem]] | None = None,
) -> Graph:
    problems: list[Problem] = []
    graph = _build(workflow, problems, strict, check_maps)
    if not problems:
        _check_cycles(graph, problems, with_events=strict)
    elif strict:
        _check_cycles_despite(workflow, graph, problems)
    size: int | None = None
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
    if more is not None and _within_size_limits(workflow, size):
        problems.extend(more(workflow))
    if problems:
        raise problems_error(workflow, problems)
    return graph


def _within_size_limits(workflow: PluginWorkflow, size: int | None) -> bool:
    """Is the definition within the registration size limits? Further checks (compiling
    every expression of every node) run only then, so their cost stays bounded."""
    if len(workflow.nodes) > MAX_NODES or len(workflow.connections) > MAX_CONNECTIONS:
        return False
    if size is None:
        size = len(workflow.model_dump_json(exclude_defaults=True))
    return size <= MAX_DEFINITION_BYTES


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


def _check_values(workflow: PluginWorkflow, problems: list[Problem]) -> None:
    """Plain JSON everywhere, within ``MAX_DEFINITION_VALUES`` values in all (so a value
    built in Python that shares its parts cannot make the walk long), plus names."""
    left = MAX_DEFINITION_VALUES

    def value(where: str, field: str, data: Any) -> None:
        nonlocal left
        if not data:
            return
        problem, seen = json_problem_and_count(data, MAX_JSON_DEPTH, left, field)
        if seen > left:
            problem = f"{field} takes the definition over {MAX_DEFINITION_VALUES:,} JSON values"
        left -= seen
        if problem:
            problems.append(Problem(Code.InvalidWorkflowStructure, f"{where}: {problem}"))

    def text(where: str, field: str, data: Any) -> None:
        if type(data) is str and data.isascii():
            return
        problem, _ = json_problem_and_count(data, MAX_JSON_DEPTH, 1, field)
        if problem:
            problems.append(Problem(Code.InvalidWorkflowStructure, f"{where}: {problem}"))

    def port(where: str, kind: str, name: str) -> None:
        if name and (reason := check_id(kind, name)):
            problems.append(Problem(Code.InvalidWorkflowStructure, f"{where}: {reason}"))

    top = "workflow"
    text(top, "name", workflow.name)
    text(top, "description", workflow.description)
    value(top, "global_configuration", workflow.global_configuration)
    value(top, "metadata", workflow.metadata)
    for index, node in enumerate(workflow.nodes):
        where = f"node '{node.node_id}'" if node.node_id.isascii() else f"node #{index}"
        text(where, "name", node.name)
        text(where, "description", node.description)
        if node.plugin_id and not _PLUGIN_ID_PATTERN.fullmatch(node.plugin_id):
            problems.append(
                Problem(
                    Code.InvalidWorkflowStructure,
                    f"{where}: plugin_id {node.plugin_id[:60]!r} may only contain printable "
                    "ASCII characters without spaces",
                )
            )
        elif len(node.plugin_id) > MAX_ID_LENGTH:
            problems.append(
                Problem(
                    Code.InvalidWorkflowStructure,
                    f"{where}: plugin_id is longer than {MAX_ID_LENGTH} characters",
                )
            )
        for name in node.input_ports:
            port(where, "input port", name)
        for name in node.output_ports:
            port(where, "output port", name)
        value(where, "configuration", node.configuration)
        value(where, "ui_properties", node.ui_properties)
        if node.compensation is not None:
            value(where, "compensation.configuration", node.compensation.configuration)
        if len(problems) > _MAX_REPORTED:
            return
    for index, conn in enumerate(workflow.connections):
        where = conn.label() if conn.label().isascii() else f"connection #{index}"
        port(where, "source_port", conn.source_port)
        port(where, "target_port", conn.target_port)
        value(where, "properties", conn.properties)
        if len(problems) > _MAX_REPORTED:
            return


def _build(
    workflow: PluginWorkflow, problems: list[Problem], strict: bool, check_maps: bool
) -> Graph:
    def add(code: PluginErrorCode, message: str) -> None:
        problems.append(Problem(code, message))

    if reason := check_id("workflow_id", workflow.workflow_id):
        add(Code.InvalidWorkflowStructure, reason)
    # Registration only: workflow code accepts what was registered under earlier limits
    # (MAX_DEFINITION_BYTES bounds it all the same).
    if strict and len(workflow.nodes) > MAX_NODES:
        add(Code.InvalidWorkflowStructure, f"{len(workflow.nodes)} nodes; the limit is {MAX_NODES}")
        return Graph(workflow)
    if strict and len(workflow.connections) > MAX_CONNECTIONS:
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
    # Registration only: definitions registered before ``execution`` was reserved run.
    shared = execution_problem(workflow.global_configuration, {}) if strict else None
    if shared:
        add(Code.InvalidWorkflowStructure, f"global_configuration: {shared}")
    for index, node in enumerate(workflow.nodes):
        _check_node(index, node, graph, add)
        reason = execution_problem(workflow.global_configuration, node.configuration)
        if strict and reason and reason != shared:
            where = f"node '{node.node_id}'" if node.node_id else f"node #{index}"
            add(Code.InvalidWorkflowStructure, f"{where} ({node.plugin_id}): {reason}")

    seen_connection_ids: set[str] = set()
    seen_edges: set[tuple[str, str, str, str, ConnectionType]] = set()
    input_keys: dict[tuple[str, str], WorkflowConnection] = {}
    for index, conn in enumerate(workflow.connections):
        edge = _check_connection(index, conn, graph, add, seen_connection_ids, seen_edges, strict)
        if edge is None:
            continue
        if edge.kind is ConnectionType.DataFlow:
            key = (edge.target, edge.input_key)
            if key in input_keys:
                add(
                    Code.InvalidConnection,
                    f"{conn.label()} and {input_keys[key].label()} both deliver to input "
                    f"'{edge.input_key}' of node '{edge.target}'; give them different "
                    "target ports",
                )
                continue
            input_keys[key] = conn
        if edge.kind is ConnectionType.Event:
            graph.event_edges.append(edge)
        else:
            graph.outgoing[edge.source].append(edge)
            graph.incoming[edge.target].append(edge)

    _check_mode(workflow, graph, add)
    if check_maps and not problems:
        _check_maps(workflow, add)
    if strict:  # a new key: registration's rule only (workflow code never checks it)
        for message in compensation_problems(workflow, with_maps=check_maps and not problems):
            add(Code.InvalidWorkflowStructure, message)
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
    if node.plugin_id == SPLIT:  # a Splitter's batch_size is its map's (engine_nodes)
        misplaced = [key for key in misplaced if key != "batch_size"]
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
    strict: bool,
) -> Edge | None:
    def label() -> str:  # only on error: formatting it per connection costs at 10,000 edges
        return conn.label() if conn.source_node or conn.connection_id else f"connection #{index}"

    ok = True
    if conn.connection_id:
        if reason := check_id("connection_id", conn.connection_id):
            add(Code.InvalidWorkflowStructure, f"{label()}: {reason}")
            ok = False
        elif conn.connection_id in seen_ids:
            add(Code.InvalidWorkflowStructure, f"duplicate connection_id '{conn.connection_id}'")
            ok = False
        seen_ids.add(conn.connection_id)
    for end, node_id in (("source_node", conn.source_node), ("target_node", conn.target_node)):
        if not node_id:
            add(Code.NodeNotFound, f"{label()} has no {end}")
            ok = False
        elif node_id not in graph.nodes:
            add(Code.NodeNotFound, f"{label()}: {end} '{node_id}' is not a node of the workflow")
            ok = False
    if not ok:
        return None

    source, target = graph.nodes[conn.source_node], graph.nodes[conn.target_node]
    if conn.source_port and source.output_ports and conn.source_port not in source.output_ports:
        add(
            Code.InvalidConnection,
            f"{label()}: node '{source.node_id}' has no output port '{conn.source_port}' "
            f"(declared: {', '.join(source.output_ports)})",
        )
        ok = False
    if conn.target_port and target.input_ports and conn.target_port not in target.input_ports:
        add(
            Code.InvalidConnection,
            f"{label()}: node '{target.node_id}' has no input port '{conn.target_port}' "
            f"(declared: {', '.join(target.input_ports)})",
        )
        ok = False
    if conn.source_node == conn.target_node and (strict or conn.connection_type in ORDERING_KINDS):
        add(
            Code.CircularDependency,
            f"{label()} connects node '{conn.source_node}' to itself (cycle: "
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
        add(Code.InvalidConnection, f"{label()} duplicates an earlier connection")
        ok = False
    seen_edges.add(identity)

    route = conn.properties.get("on", "success")
    if route not in ("success", "error"):
        add(
            Code.InvalidConnection,
            f"{label()}: properties.on must be 'success' or 'error', got {route!r}",
        )
        ok = False
    if "default" in conn.properties:
        if (
            conn.properties["default"] is not True
            or conn.connection_type is not ConnectionType.Control
        ):
            add(
                Code.InvalidConnection,
                f"{label()}: properties.default must be true, on a Control connection",
            )
            ok = False
        elif "condition" in conn.properties:
            add(Code.InvalidConnection, f"{label()}: a default connection has no condition")
            ok = False
    condition: Condition | None = None
    if "condition" in conn.properties:
        if conn.connection_type is not ConnectionType.Control:
            add(
                Code.InvalidConnection,
                f"{label()}: conditions are only evaluated on Control connections, "
                f"not {conn.connection_type.name}",
            )
            ok = False
        else:
            try:
                condition = compile_condition(conn.properties["condition"], strict=strict)
            except ConditionError as exc:
                reason = str(exc)
                if not reason.startswith("condition"):
                    reason = f"condition {reason}"
                add(Code.InvalidConnection, f"{label()}: {reason}")
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
    if (
        mode.is_long_running
        and graph.nodes
        and not any(n.node_type is WorkflowNodeType.Source for n in graph.nodes.values())
    ):
        add(
            Code.ExecutionModeNotSupported,
            f"{mode.name} mode needs a Source node to produce "
            f"{'events' if mode is WorkflowExecutionMode.EventDriven else 'items'}",
        )


def _check_cycles(graph: Graph, problems: list[Problem], *, with_events: bool) -> None:
    """Name every cycle over the ordering connections (and over Event connections too
    ``with_events``: a pass runs them as Dependency connections)."""
    incoming = graph.incoming
    outgoing = graph.outgoing
    if with_events and graph.event_edges:
        incoming = {node_id: list(edges) for node_id, edges in incoming.items()}
        outgoing = {node_id: list(edges) for node_id, edges in outgoing.items()}
        for edge in graph.event_edges:
            incoming[edge.target].append(edge)
            outgoing[edge.source].append(edge)
    # Kahn's algorithm: an acyclic graph (the usual case) costs one linear pass.
    indegree = {node_id: len(edges) for node_id, edges in incoming.items()}
    queue = [node_id for node_id, degree in indegree.items() if degree == 0]
    while queue:
        for edge in outgoing[queue.pop()]:
            indegree[edge.target] -= 1
            if indegree[edge.target] == 0:
                queue.append(edge.target)
    remaining = {node_id for node_id, degree in indegree.items() if degree > 0}
    if remaining:
        sources = {
            node_id: [e.source for e in incoming[node_id] if e.source in remaining]
            for node_id in remaining
        }
        _report_cycles(remaining, sources, graph.position, problems)


def _check_cycles_despite(workflow: PluginWorkflow, graph: Graph, problems: list[Problem]) -> None:
    """The cycle check of a definition that has other problems, so that every problem is
    reported at once: over every connection between two known nodes, whatever else is wrong
    with it (self-loops were reported where they were found)."""
    sources: dict[str, list[str]] = {node_id: [] for node_id in graph.nodes}
    for conn in workflow.connections:
        source, target = conn.source_node, conn.target_node
        if source != target and source in sources and target in sources:
            sources[target].append(source)
    _report_cycles(set(sources), sources, graph.position, problems)


def _report_cycles(
    nodes: set[str],
    sources: dict[str, list[str]],
    position: dict[str, int],
    problems: list[Problem],
) -> None:
    """One problem per strongly connected component of ``nodes`` that holds a cycle, each
    naming one of its cycles, in the order of the components' first nodes."""
    outgoing: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    for target in nodes:
        for origin in sources[target]:
            if origin in nodes:
                outgoing[origin].append(target)
    found: list[list[str]] = []
    for component in _components(nodes, outgoing, position):
        if len(component) > 1:
            found.append(_cycle_in(component, sources, position))
    found.sort(key=lambda cycle: position[cycle[0]])
    for index, cycle in enumerate(found):
        shown = cycle if len(cycle) <= 21 else [*cycle[:10], "...", *cycle[-10:]]
        length = f" ({len(cycle) - 1:,} nodes)" if len(cycle) > 21 else ""
        details: dict[str, Any] = {"cycles": found}
        if index == 0:
            details["cycle"] = cycle
        problems.append(
            Problem(
                Code.CircularDependency,
                f"circular dependency: {' -> '.join(shown)}{length}",
                details,
            )
        )


def _components(
    nodes: set[str], outgoing: dict[str, list[str]], position: dict[str, int]
) -> list[set[str]]:
    """Strongly connected components of the subgraph on ``nodes`` (Tarjan's algorithm,
    iterative: a 10,000-node cycle must not exhaust the stack), visited in definition order
    so the result does not depend on set iteration order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(nodes, key=position.__getitem__):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter([t for t in outgoing[root] if t in nodes]))]
        while work:
            node_id, targets = work[-1]
            advanced = False
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter([t for t in outgoing[target] if t in nodes])))
                    advanced = True
                    break
                if target in on_stack:
                    low[node_id] = min(low[node_id], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node_id])
            if low[node_id] == index[node_id]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node_id:
                        break
                components.append(component)
    return components


def _cycle_in(
    component: set[str], sources: dict[str, list[str]], position: dict[str, int]
) -> list[str]:
    """A cycle through a strongly connected component, starting and ending at its earliest
    node: every member has a predecessor inside it, so walking backwards must revisit one."""
    start = min(component, key=position.__getitem__)
    walk = [start]
    seen_at = {start: 0}
    current = start
    while True:
        current = next(origin for origin in sources[current] if origin in component)
        if current in seen_at:
            cycle = list(reversed(walk[seen_at[current] :]))
            first = cycle.index(min(cycle, key=position.__getitem__))
            cycle = cycle[first:] + cycle[:first]
            cycle.append(cycle[0])
            return cycle
        seen_at[current] = len(walk)
        walk.append(current)


def problems_error(workflow: PluginWorkflow, problems: list[Problem]) -> PluginError:
    """The error reporting ``problems`` (at least one): the first one's code, a message
    listing up to ten, ``details["problems"]`` with each one's code and message (and the
    ``node_id`` and ``plugin_id`` of a catalog problem)."""
    name = f"workflow '{workflow.workflow_id}'" if workflow.workflow_id else "workflow"
    shown = "; ".join(p.message for p in problems[:_MAX_REPORTED])
    if len(problems) > _MAX_REPORTED:
        shown += f"; and {len(problems) - _MAX_REPORTED} more"
    prefix = f"{name} is invalid" if len(problems) == 1 else f"{name} has {len(problems)} problems"
    entries: list[dict[str, Any]] = []
    for p in problems:
        entry: dict[str, Any] = {"code": p.code.value, "message": p.message}
        entry.update((key, p.details[key]) for key in _PER_PROBLEM if key in p.details)
        entries.append(entry)
    details: dict[str, Any] = {"problems": entries}
    for problem in problems:
        # Keys naming one problem's node stand at the top only when there is one problem.
        details.update(
            (key, value)
            for key, value in problem.details.items()
            if key not in _PER_PROBLEM or len(problems) == 1
        )
    return PluginError(problems[0].code, f"{prefix}: {shown}", details)
