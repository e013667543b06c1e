"""Pure pieces of the long-running modes: the graph of one EventDriven pass, and the plan a
Streaming batch follows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from engine import (
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.language.validation import compile_workflow
from engine.runtime.interpreter import Interpreter, NodeCall, NodeSuccess
from engine.runtime.passes import pass_workflow
from engine.runtime.stream_plan import StreamError, carried_items, plan_stream, primary_items
from tests.helpers.builders import edge, node

Kind = ConnectionType


def _source(node_id: str = "src") -> WorkflowNode:
    return WorkflowNode(node_id=node_id, plugin_id="p", node_type=WorkflowNodeType.Source)


def _event_workflow(
    nodes: list[WorkflowNode], connections: list[WorkflowConnection]
) -> PluginWorkflow:
    return PluginWorkflow(
        workflow_id="w",
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=nodes,
        connections=connections,
    )


async def _run_pass(
    definition: PluginWorkflow, source: str, event_type: str, event: dict[str, Any]
) -> list[str]:
    calls: list[str] = []

    async def runner(call: NodeCall) -> NodeSuccess:
        calls.append(call.node_id)
        await asyncio.sleep(0)
        return NodeSuccess({"seen": call.inputs})

    graph = compile_workflow(pass_workflow(definition, source, event_type))
    interpreter = Interpreter(
        graph,
        execution_id="e",
        input_data=event,
        runner=runner,
        clock=lambda: datetime.now(UTC),
        completed={source: event},
        pass_id=1,
        emit=lambda kind, fields: None,
    )
    await interpreter.run()
    return calls


async def test_event_connections_route_by_event_type() -> None:
    definition = _event_workflow(
        [_source(), node("on_created"), node("on_deleted"), node("after_created")],
        [
            WorkflowConnection(
                source_node="src",
                target_node="on_created",
                connection_type=Kind.Event,
                properties={"event_type": "created"},
            ),
            WorkflowConnection(
                source_node="src",
                target_node="on_deleted",
                connection_type=Kind.Event,
                properties={"event_type": "deleted"},
            ),
            edge("on_created", "after_created"),
        ],
    )
    assert await _run_pass(definition, "src", "created", {"f": 1}) == [
        "on_created",
        "after_created",
    ]
    assert await _run_pass(definition, "src", "deleted", {"f": 1}) == ["on_deleted"]


async def test_a_source_without_connections_feeds_the_roots() -> None:
    """The spec's example: no connection from the file watcher to the validator."""
    definition = _event_workflow(
        [_source("watcher"), node("validator"), node("valid"), node("invalid")],
        [
            edge("validator", "valid", condition="seen.ok == true"),
            edge("validator", "invalid", condition="seen.ok == false"),
        ],
    )
    assert await _run_pass(definition, "watcher", "created", {"ok": True}) == ["validator", "valid"]


async def test_dataflow_from_the_source_carries_the_event_and_other_sources_stay_out() -> None:
    definition = _event_workflow(
        [_source("a"), _source("b"), node("x"), node("y")],
        [edge("a", "x", target_port="event"), edge("b", "y"), edge("x", "y", target_port="x")],
    )
    sub = pass_workflow(definition, "a", "t")
    assert [n.node_id for n in sub.nodes] == ["a", "x", "y"]
    assert [(c.source_node, c.target_node) for c in sub.connections] == [("a", "x"), ("x", "y")]


def _stream() -> PluginWorkflow:
    return PluginWorkflow(
        workflow_id="s",
        execution_mode=WorkflowExecutionMode.Streaming,
        nodes=[
            node("sink"),
            WorkflowNode(node_id="src", plugin_id="p", node_type=WorkflowNodeType.Source),
            node("big"),
            node("all"),
            node("unrelated"),
        ],
        connections=[
            edge("src", "all"),
            edge("src", "big", condition="n > 5"),
            edge("big", "sink", target_port="big"),
            edge("all", "sink", source_port="kept", target_port="all"),
        ],
    )


def test_stream_plan_orders_and_routes() -> None:
    plan = plan_stream(_stream(), "src")
    assert [s.node_id for s in plan.steps] == ["big", "all", "sink"]  # unrelated is not fed
    sink = plan.steps[-1]
    assert sink.is_sink
    assert [(i.upstream, i.key, i.port) for i in sink.inputs] == [
        ("big", "big", ""),
        ("all", "all", "kept"),
    ]
    big_input = plan.steps[0].inputs[0]
    assert carried_items(big_input, [{"n": 3}, {"n": 8}]) == [{"n": 8}]  # per-item condition
    assert carried_items(sink.inputs[1], {"kept": [{"n": 1}], "items": []}) == [{"n": 1}]
    assert carried_items(sink.inputs[0], {"items": [{"n": 9}]}) == [{"n": 9}]


def test_stream_outputs_without_items_are_clear_errors() -> None:
    with pytest.raises(StreamError, match="node 'x' returned no 'items' list"):
        primary_items({"count": 3}, "x")
    plan = plan_stream(_stream(), "src")
    with pytest.raises(StreamError, match="failed on item 1"):
        carried_items(plan.steps[0].inputs[0], [{"n": 1}, {"m": 2}])
