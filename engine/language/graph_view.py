"""Pictures of a definition's graph, optionally coloured by an execution's node states.

Three renderings share one layering: Mermaid and Graphviz DOT text (``orchestrator graph``),
and a rich table for the terminal (``orchestrator status`` and ``run --follow``), in the
manner of ``argo get``: one row per node in graph order, with its step, a status glyph,
what it waits for and, for long-running modes, its counters.

Pure functions of their inputs: no I/O, so they are tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from engine.language.models import ConnectionType, PluginWorkflow, WorkflowExecutionContext

NodeStates = Mapping[str, Mapping[str, Any]]

# Status -> (glyph, rich style, fill colour for Mermaid/DOT). Unknown statuses look pending.
_STATUS_LOOK: dict[str, tuple[str, str, str]] = {
    "pending": ("○", "dim", "#f1f3f5"),
    "running": ("◷", "bold cyan", "#cfe2ff"),
    "completed": ("✔", "green", "#d1e7dd"),
    "failed": ("✖", "bold red", "#f8d7da"),
    "skipped": ("↷", "yellow", "#fff3cd"),
    "cancelled": ("⊘", "magenta", "#e2d9f3"),
    "paused": ("‖", "yellow", "#fff3cd"),
    "queued": ("⧗", "blue", "#ede9fe"),  # waiting for a slot of max_concurrent_executions
}

# Mermaid arrows and DOT styles that tell connection types apart.
_MERMAID_ARROW = {
    ConnectionType.DataFlow: "-->",
    ConnectionType.Control: "-.->",
    ConnectionType.Event: "==>",
    ConnectionType.Dependency: "--o",
}
_DOT_STYLE = {
    ConnectionType.DataFlow: "solid",
    ConnectionType.Control: "dashed",
    ConnectionType.Event: "bold",
    ConnectionType.Dependency: "dotted",
}

FORMATS = ("mermaid", "dot")


def layers(workflow: PluginWorkflow) -> list[list[str]]:
    """Nodes grouped by step: a node's step is one more than its furthest predecessor's.

    Order within a step follows the definition. Nodes on a cycle (which validation
    refuses, but a picture should not hang on) go into one last step.
    """
    order = [node.node_id for node in workflow.nodes]
    known = set(order)
    predecessors: dict[str, list[str]] = {node_id: [] for node_id in order}
    for connection in workflow.connections:
        if connection.source_node in known and connection.target_node in known:
            predecessors[connection.target_node].append(connection.source_node)
    step: dict[str, int] = {}
    remaining = list(order)
    while remaining:
        ready = [n for n in remaining if all(p in step for p in predecessors[n])]
        if not ready:  # a cycle: place what is left after everything else
            last = max(step.values(), default=-1) + 1
            step.update(dict.fromkeys(remaining, last))
            break
        for node_id in ready:
            step[node_id] = 1 + max((step[p] for p in predecessors[node_id]), default=-1)
        remaining = [n for n in remaining if n not in step]
    grouped: list[list[str]] = [[] for _ in range(max(step.values(), default=-1) + 1)]
    for node_id in order:
        grouped[step[node_id]].append(node_id)
    return grouped


def render(workflow: PluginWorkflow, fmt: str, node_states: NodeStates | None = None) -> str:
    """The graph as ``mermaid`` or ``dot`` text, nodes filled by status if states are given."""
    if fmt == "mermaid":
        return to_mermaid(workflow, node_states)
    if fmt == "dot":
        return to_dot(workflow, node_states)
    raise ValueError(f"unknown graph format '{fmt}': expected one of {', '.join(FORMATS)}")


def to_mermaid(workflow: PluginWorkflow, node_states: NodeStates | None = None) -> str:
    """A Mermaid ``flowchart LR``; node ids are numbered because Mermaid reserves words
    (``end``) and characters that definitions may use."""
    ids = {node.node_id: f"n{index}" for index, node in enumerate(workflow.nodes)}
    lines = ["flowchart LR"]
    for node in workflow.nodes:
        label = _mermaid_text(f"{node.name or node.node_id}")
        detail = _mermaid_text(node.plugin_id or node.node_type.value)
        line = f'    {ids[node.node_id]}["{label}<br/><small>{detail}</small>"]'
        status = _status(node_states, node.node_id)
        if status is not None:
            line += f":::{status}"
        lines.append(line)
    for connection in workflow.connections:
        if connection.source_node not in ids or connection.target_node not in ids:
            continue
        arrow = _MERMAID_ARROW[connection.connection_type]
        ports = _ports(connection.source_port, connection.target_port)
        label = f"|{_mermaid_text(ports)}|" if ports else ""
        lines.append(
            f"    {ids[connection.source_node]} {arrow}{label} {ids[connection.target_node]}"
        )
    if node_states is not None:
        for status, (_, _, fill) in _STATUS_LOOK.items():
            lines.append(f"    classDef {status} fill:{fill}")
    return "\n".join(lines) + "\n"


def to_dot(workflow: PluginWorkflow, node_states: NodeStates | None = None) -> str:
    """A Graphviz digraph; nodes with a ``ui_properties.position`` keep it as a hint
    (``pos``, used by ``neato -n``; ``dot`` lays out on its own)."""
    lines = [
        f"digraph {_dot_quote(workflow.workflow_id or 'workflow')} {{",
        "    rankdir=LR;",
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in workflow.nodes:
        label = f"{node.name or node.node_id}\n{node.plugin_id or node.node_type.value}"
        attributes = [f"label={_dot_quote(label)}"]
        status = _status(node_states, node.node_id)
        if status is not None:
            attributes.append(f'fillcolor="{_STATUS_LOOK[status][2]}"')
            attributes.append(f"tooltip={_dot_quote(status)}")
        position = _position(node.ui_properties)
        if position is not None:
            # Graphviz's y axis points up; the studio's points down.
            attributes.append(f'pos="{position[0]:g},{-position[1]:g}"')
        lines.append(f"    {_dot_quote(node.node_id)} [{', '.join(attributes)}];")
    known = {node.node_id for node in workflow.nodes}
    for connection in workflow.connections:
        if connection.source_node not in known or connection.target_node not in known:
            continue
        attributes = [f"style={_DOT_STYLE[connection.connection_type]}"]
        ports = _ports(connection.source_port, connection.target_port)
        if ports:
            attributes.append(f"label={_dot_quote(ports)}")
        source, target = _dot_quote(connection.source_node), _dot_quote(connection.target_node)
        lines.append(f"    {source} -> {target} [{', '.join(attributes)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def status_view(
    workflow: PluginWorkflow,
    context: WorkflowExecutionContext,
    *,
    ui_link: str | None = None,
    now: datetime | None = None,
) -> RenderableType:
    """The execution's header and its graph, one row per node with its live state."""
    # "label:  value" lines, as plain text stays easy to grep; colour carries the status.
    header = Table.grid(padding=(0, 1))
    header.add_column(min_width=13)
    header.add_column()
    version = context.execution_data.get("workflow_version", workflow.version)
    _, style, _ = _STATUS_LOOK[_status_name(context.status.value)]
    header.add_row("execution:", context.execution_id)
    header.add_row("workflow:", f"{context.workflow_id} (version {version})")
    header.add_row("status:", Text(context.status.value, style=style))
    header.add_row("progress:", _progress_bar(context.progress))
    header.add_row("current node:", context.current_node or "-")
    if context.start_time is not None:
        end = context.end_time or now
        duration = f"  ({_duration(context.start_time, end)})" if end else ""
        header.add_row("started:", context.start_time.isoformat(timespec="seconds") + duration)
    if ui_link:
        header.add_row("temporal ui:", ui_link)
    observed = context.execution_data.get("observed")
    if isinstance(observed, dict) and observed.get("source") == "history":
        note = f"as of {observed.get('as_of')}: no worker answered; read from Temporal's history"
        header.add_row(Text("observed:", style="yellow"), note)
    for message in context.error_messages:
        header.add_row(Text("error:", style="red"), message)
    compensation = context.execution_data.get("compensation")
    if isinstance(compensation, Mapping):  # see engine.runtime.compensation
        nodes = ", ".join(str(n) for n in compensation.get("nodes") or [])
        look = "red" if compensation.get("status") == "failed" else "yellow"
        header.add_row(
            Text("compensation:", style=look),
            f"{compensation.get('status')} (execution {compensation.get('reason')}): {nodes}",
        )
    return Group(header, Text(""), node_table(workflow, context.node_states, now=now))


def node_table(
    workflow: PluginWorkflow, node_states: NodeStates, *, now: datetime | None = None
) -> Table:
    """One row per node in step order: its step, status, plugin, what it waits for, its
    attempts and time, and its error or counters."""
    after: dict[str, list[str]] = {node.node_id: [] for node in workflow.nodes}
    for connection in workflow.connections:
        if connection.target_node in after:
            arrow = "" if connection.connection_type is ConnectionType.DataFlow else "~"
            after[connection.target_node].append(arrow + connection.source_node)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("STEP", "NODE", "PLUGIN", "AFTER", "ATTEMPTS", "TIME", "DETAIL"):
        table.add_column(column, no_wrap=column != "DETAIL", overflow="fold")
    for step, node_ids in enumerate(layers(workflow), start=1):
        for node_id in node_ids:
            node = workflow.node(node_id)
            assert node is not None
            state = node_states.get(node_id, {})
            status = _status_name(str(state.get("status", "pending")))
            glyph, style, _ = _STATUS_LOOK[status]
            table.add_row(
                str(step),
                Text(f"{glyph} {node_id}", style=style),
                node.plugin_id or node.node_type.value,
                ", ".join(after[node_id]) or "-",
                str(state.get("attempts") or "-"),
                _node_time(state, now),
                _detail(state),
            )
    return table


def _detail(state: Mapping[str, Any]) -> Text:
    error = state.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        return Text(str(error["message"]), style="red")
    compensation = state.get("compensation")
    if isinstance(compensation, Mapping):
        failed = compensation.get("status") == "failed"
        text = f"compensation {compensation.get('status')} ({compensation.get('plugin_id')})"
        if failed and compensation.get("error"):
            text += f": {compensation['error']}"
        return Text(text, style="red" if failed else "yellow")
    if state.get("skipped_by_operator"):
        return Text("skipped by an operator", style="yellow")
    counters = state.get("counters")
    if isinstance(counters, Mapping):
        shown = [
            f"{name.replace('_', ' ')} {value}"
            for name, value in counters.items()
            if isinstance(value, int) and value and name != "running"
        ]
        return Text(", ".join(shown), style="dim")
    return Text("")


def _node_time(state: Mapping[str, Any], now: datetime | None) -> str:
    started = _parse_time(state.get("started_at"))
    if started is None:
        return "-"
    ended = _parse_time(state.get("completed_at"))
    if ended is None or ended < started:
        ended = now if state.get("status") == "running" else None
    return _duration(started, ended) if ended is not None else "-"


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _duration(start: datetime, end: datetime | None) -> str:
    if end is None:
        return "-"
    try:
        seconds = max((end - start).total_seconds(), 0.0)
    except TypeError:  # one naive, one aware: not comparable, say nothing rather than lie
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def _progress_bar(progress: float, width: int = 24) -> Text:
    filled = round(max(0.0, min(progress, 1.0)) * width)
    bar = Text("█" * filled, style="green") + Text("░" * (width - filled), style="dim")
    return Text(f"{progress:.0%} ") + bar


def _status_name(status: str) -> str:
    lowered = status.lower()
    return lowered if lowered in _STATUS_LOOK else "pending"


def _status(node_states: NodeStates | None, node_id: str) -> str | None:
    if node_states is None:
        return None
    return _status_name(str(node_states.get(node_id, {}).get("status", "pending")))


def _ports(source_port: str, target_port: str) -> str:
    if not source_port and not target_port:
        return ""
    return f"{source_port or '*'} → {target_port or '*'}"


def _position(ui_properties: Mapping[str, Any]) -> tuple[float, float] | None:
    position = ui_properties.get("position")
    if isinstance(position, Mapping):
        x, y = position.get("x"), position.get("y")
        if isinstance(x, int | float) and isinstance(y, int | float):
            return float(x), float(y)
    return None


def _mermaid_text(text: str) -> str:
    # Mermaid's entity codes keep quotes and markup characters from ending the label.
    for char, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text.replace("|", "#124;")


def _dot_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
