"""Graph pictures (Mermaid, DOT, the terminal table) from definitions and node states."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from engine.language.graph_view import layers, node_table, render, status_view, to_dot, to_mermaid
from engine.language.models import (
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionContext,
    WorkflowExecutionStatus,
    WorkflowNode,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _workflow(nodes: list[str], edges: list[tuple[str, str]], **connection: Any) -> PluginWorkflow:
    return PluginWorkflow(
        workflow_id="pictured",
        nodes=[WorkflowNode(node_id=n, plugin_id=f"p_{n}") for n in nodes],
        connections=[
            WorkflowConnection(source_node=a, target_node=b, **connection) for a, b in edges
        ],
    )


def _plain(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def test_layers_place_each_node_after_its_furthest_predecessor() -> None:
    diamond = _workflow(
        ["d", "a", "b", "c", "e"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d")]
    )
    assert layers(diamond) == [["a", "e"], ["b", "c"], ["d"]]


def test_layers_put_a_cycle_last_instead_of_hanging() -> None:
    looped = _workflow(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")])
    assert layers(looped) == [["a"], ["b", "c"]]


def test_mermaid_numbers_nodes_escapes_labels_and_draws_connection_types() -> None:
    workflow = PluginWorkflow(
        workflow_id="w",
        nodes=[
            WorkflowNode(node_id="end", name='say "hi" <b>', plugin_id="p#1"),
            WorkflowNode(node_id="x|y", plugin_id="p2"),
        ],
        connections=[
            WorkflowConnection(
                source_node="end", source_port="out", target_node="x|y", target_port="in"
            ),
            WorkflowConnection(
                source_node="x|y", target_node="end", connection_type=ConnectionType.Control
            ),
            WorkflowConnection(
                source_node="end", target_node="x|y", connection_type=ConnectionType.Event
            ),
            WorkflowConnection(
                source_node="end", target_node="x|y", connection_type=ConnectionType.Dependency
            ),
        ],
    )
    text = to_mermaid(workflow)
    assert text.splitlines() == [
        "flowchart LR",
        '    n0["say #quot;hi#quot; #lt;b#gt;<br/><small>p#35;1</small>"]',
        '    n1["x#124;y<br/><small>p2</small>"]',
        "    n0 -->|out → in| n1",
        "    n1 -.-> n0",
        "    n0 ==> n1",
        "    n0 --o n1",
    ]


def test_mermaid_and_dot_colour_nodes_by_status() -> None:
    workflow = _workflow(["a", "b"], [("a", "b")])
    states = {"a": {"status": "completed"}, "b": {"status": "weird"}}
    mermaid = to_mermaid(workflow, states)
    assert '    n0["a<br/><small>p_a</small>"]:::completed' in mermaid
    assert ":::pending" in mermaid  # an unknown status is drawn as pending, never dropped
    assert "    classDef failed fill:#f8d7da" in mermaid
    dot = to_dot(workflow, states)
    assert '"a" [label="a\\np_a", fillcolor="#d1e7dd", tooltip="completed"];' in dot


def test_dot_quotes_ids_keeps_positions_and_styles_connection_types() -> None:
    workflow = PluginWorkflow(
        workflow_id='quote"d',
        nodes=[
            WorkflowNode(
                node_id='a "1"', plugin_id="p", ui_properties={"position": {"x": 10, "y": 20.5}}
            ),
            WorkflowNode(node_id="b", plugin_id="q", ui_properties={"position": "nowhere"}),
        ],
        connections=[
            WorkflowConnection(
                source_node='a "1"',
                target_node="b",
                target_port="in",
                connection_type=ConnectionType.Control,
            ),
            WorkflowConnection(source_node="b", target_node="ghost"),  # dangling: not drawn
        ],
    )
    dot = to_dot(workflow)
    assert dot.startswith('digraph "quote\\"d" {\n')
    assert '"a \\"1\\"" [label="a \\"1\\"\\np", pos="10,-20.5"];' in dot
    assert '"b" [label="b\\nq"];' in dot
    assert '"a \\"1\\"" -> "b" [style=dashed, label="* → in"];' in dot
    assert "ghost" not in dot


@pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI") != "true",
    reason="Graphviz's dot is not installed (CI installs it)",
)
def test_graphviz_accepts_the_dot_text() -> None:
    workflow = PluginWorkflow(
        workflow_id="w-1",
        nodes=[
            WorkflowNode(node_id='odd "id"\\', plugin_id="p"),
            WorkflowNode(
                node_id="ünï", plugin_id="q", ui_properties={"position": {"x": 1, "y": 2}}
            ),
        ],
        connections=[
            WorkflowConnection(source_node='odd "id"\\', source_port="o", target_node="ünï")
        ],
    )
    dot = shutil.which("dot")
    assert dot is not None, "CI=true: Graphviz must be installed (.ci/run installs it)"
    svg = subprocess.run(
        [dot, "-Tsvg"],
        input=to_dot(workflow, {"ünï": {"status": "failed"}}),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "<svg" in svg
    assert "ünï" in svg
    assert "odd &quot;id&quot;\\" in svg


def test_render_refuses_unknown_formats() -> None:
    with pytest.raises(
        ValueError, match="unknown graph format 'svg': expected one of mermaid, dot"
    ):
        render(_workflow(["a"], []), "svg")


def test_node_table_shows_steps_states_waits_times_errors_and_counters() -> None:
    workflow = _workflow(["load", "check", "store"], [("load", "check"), ("check", "store")])
    workflow.connections.append(
        WorkflowConnection(
            source_node="load", target_node="store", connection_type=ConnectionType.Control
        )
    )
    states = {
        "load": {
            "status": "completed",
            "attempts": 1,
            "started_at": T0.isoformat(),
            "completed_at": (T0 + timedelta(milliseconds=250)).isoformat(),
            "counters": {"items_in": 12, "items_out": 10, "errors": 0, "running": 1},
        },
        "check": {
            "status": "running",
            "attempts": 2,
            "started_at": T0.isoformat(),
            "error": {"message": "timed out, retrying"},
        },
    }
    text = _plain(node_table(workflow, states, now=T0 + timedelta(seconds=75)))
    rows = [line.split() for line in text.splitlines()]
    assert rows[0] == ["STEP", "NODE", "PLUGIN", "AFTER", "ATTEMPTS", "TIME", "DETAIL"]
    # Counters that are zero, and the "running" gauge, are left out.
    assert rows[1] == [
        "1",
        "✔",
        "load",
        "p_load",
        "-",
        "1",
        "250ms",
        "items",
        "in",
        "12,",
        "items",
        "out",
        "10",
    ]
    assert rows[2] == [
        "2",
        "◷",
        "check",
        "p_check",
        "load",
        "2",
        "1m15s",
        "timed",
        "out,",
        "retrying",
    ]
    assert rows[3] == ["3", "○", "store", "p_store", "check,", "~load", "-", "-"]


def test_status_view_has_a_greppable_header() -> None:
    workflow = _workflow(["a"], [])
    context = WorkflowExecutionContext(
        execution_id="pictured/run-1",
        workflow_id="pictured",
        status=WorkflowExecutionStatus.Failed,
        start_time=T0,
        end_time=T0 + timedelta(seconds=3.25),
        progress=0.5,
        execution_data={"workflow_version": 4},
        node_states={"a": {"status": "failed", "error": {"message": "boom"}}},
        error_messages=["node 'a' failed: boom"],
    )
    text = _plain(status_view(workflow, context, ui_link="http://ui/x"))
    lines = text.splitlines()
    assert lines[:8] == [
        "execution:    pictured/run-1",
        "workflow:     pictured (version 4)",
        "status:       failed",
        "progress:     50% ████████████░░░░░░░░░░░░",
        "current node: -",
        "started:      2026-01-02T03:04:05+00:00  (3.2s)",
        "temporal ui:  http://ui/x",
        "error:        node 'a' failed: boom",
    ]
    assert lines[-1].split() == ["1", "✖", "a", "p_a", "-", "-", "-", "boom"]


def test_status_view_shows_compensations() -> None:
    workflow = _workflow(["a", "b", "c"], [("a", "b"), ("b", "c")])
    undo = {"plugin_id": "undo", "attempts": 1}
    context = WorkflowExecutionContext(
        execution_id="pictured/run-2",
        workflow_id="pictured",
        status=WorkflowExecutionStatus.Failed,
        execution_data={
            "compensation": {
                "status": "failed",
                "reason": "failed",
                "nodes": ["b", "a"],
                "failed": ["b"],
            }
        },
        node_states={
            "a": {"status": "completed", "compensation": {**undo, "status": "completed"}},
            "b": {
                "status": "completed",
                "compensation": {**undo, "status": "failed", "error": "no refund"},
            },
            "c": {"status": "failed", "error": {"message": "boom"}},
        },
        error_messages=["node 'c' failed: boom", "compensation of node 'b' failed: no refund"],
    )
    lines = _plain(status_view(workflow, context)).splitlines()
    assert "compensation: failed (execution failed): b, a" in lines
    assert lines[-3].split()[-3:] == ["compensation", "completed", "(undo)"]
    assert lines[-2].split()[-5:] == ["compensation", "failed", "(undo):", "no", "refund"]
