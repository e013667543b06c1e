"""The studio draws graphs a person can read, checked from the DOM of a real Chromium: nodes
apart, every edge drawn with a visible length, no edge behind a node it does not connect.

Covered: the examples as saved (their ``ui_properties`` positions), saved positions that
make nodes touch or coincide (spread apart or laid out when shown), and the designer's
auto-layout on branching graphs with skip edges, ports and conditions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine import (
    AdvancedPluginOrchestrator,
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowNodeType,
)
from engine.studio import StudioServer
from tests.helpers.builders import edge, node, workflow
from tests.studio.browser import drawing_problems, graph_geometry, shot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Flow pixels (the zoom divided out): nodes at least this far apart, and at least this much
# of every edge outside the nodes and the handles drawn over its ends.
MIN_GAP = 40.0
MIN_VISIBLE = 24.0


def example(name: str, workflow_id: str) -> PluginWorkflow:
    """An example definition under a test's own id."""
    data = json.loads((EXAMPLES / name).read_text())
    data["workflow_id"] = workflow_id
    return PluginWorkflow.from_json(data)


def endpoints(definition: PluginWorkflow) -> dict[str, tuple[str, str]]:
    """Each edge's test id and the nodes it connects (the studio numbers edges in order)."""
    return {
        f"edge-{i}": (c.source_node, c.target_node) for i, c in enumerate(definition.connections)
    }


def at(definition: PluginWorkflow, positions: dict[str, tuple[float, float]]) -> PluginWorkflow:
    """The definition with these saved positions (nodes not named keep none)."""
    for item in definition.nodes:
        where = positions.get(item.node_id)
        item.ui_properties = {"position": {"x": where[0], "y": where[1]}} if where else {}
    return definition


async def drawn(page: Any, canvas: str, definition: PluginWorkflow) -> list[str]:
    """The problems of the graph drawn in ``canvas`` once every edge is there."""
    from playwright.async_api import expect

    await expect(page.locator(f'[data-testid="{canvas}"] .react-flow__node')).to_have_count(
        len(definition.nodes)
    )
    await expect(page.locator(f'[data-testid="{canvas}"] .react-flow__edge')).to_have_count(
        len(definition.connections)
    )
    geometry = await graph_geometry(page, canvas)
    return drawing_problems(
        geometry, endpoints(definition), min_gap=MIN_GAP, min_visible=MIN_VISIBLE
    )


async def shown(page: Any, studio: StudioServer, definition: PluginWorkflow) -> list[str]:
    """The problems of the definition's drawing on its page."""
    await page.goto(f"{studio.url}/#/workflows/{definition.workflow_id}")
    return await drawn(page, "definition-canvas", definition)


async def designed(page: Any, studio: StudioServer, definition: PluginWorkflow) -> list[str]:
    """The problems of the definition's drawing in the designer, as loaded."""
    await page.goto(f"{studio.url}/#/designer/{definition.workflow_id}")
    return await drawn(page, "designer-canvas", definition)


async def test_the_examples_draw_every_edge_visibly(
    page: Any, studio: StudioServer, orchestrator: AdvancedPluginOrchestrator, unique
) -> None:
    for name in ("quickstart.json", "event_driven_files.json", "streaming_pipeline.json"):
        definition = example(name, unique(name.removesuffix(".json").replace("_", "-")))
        assert all("position" in n.ui_properties for n in definition.nodes), name
        await orchestrator.register_workflow(definition)
        problems = await shown(page, studio, definition)
        assert not problems, f"{name}: {problems}"
        await shot(page, f"layout-example-{name.removesuffix('.json')}")


async def test_saved_positions_that_make_nodes_touch_are_spread_apart(
    page: Any, studio: StudioServer, orchestrator: AdvancedPluginOrchestrator, unique
) -> None:
    # The quick start as it was first shipped: 200 px apart, nodes 190 px wide.
    touching = at(
        example("quickstart.json", unique("touching")),
        {"input": (100, 100), "process": (300, 100), "output": (500, 100)},
    )
    # Two nodes saved on the same spot, one without a position.
    stacked = at(
        example("quickstart.json", unique("stacked")),
        {"input": (100, 100), "process": (100, 100)},
    )
    for definition in (touching, stacked):
        await orchestrator.register_workflow(definition)
        problems = await shown(page, studio, definition)
        assert not problems, f"shown {definition.workflow_id}: {problems}"
        problems = await designed(page, studio, definition)
        assert not problems, f"designed {definition.workflow_id}: {problems}"
    await shot(page, "layout-stacked-positions-in-the-designer")

    # Spreading keeps the saved arrangement: still one row, left to right.
    await shown(page, studio, touching)
    geometry = await graph_geometry(page, "definition-canvas")
    boxes = [geometry["nodes"][n] for n in ("input", "process", "output")]
    assert boxes[0]["right"] < boxes[1]["left"] < boxes[1]["right"] < boxes[2]["left"]
    assert len({round(box["top"]) for box in boxes}) == 1


def branching(workflow_id: str) -> PluginWorkflow:
    """Fan-out and fan-in, edges that skip ranks, a decision with conditions, and a node with
    declared ports: the shapes that put a straight edge behind a node."""
    nodes = [
        node("start"),
        node("a"),
        node("b"),
        node("c"),
        node("hello", "greet", greeting="Hi"),
        node("join"),
        node("check"),
        node("high"),
        node("low"),
        node("end"),
    ]
    kinds = {"start": WorkflowNodeType.Source, "check": WorkflowNodeType.Decision}
    kinds |= {"end": WorkflowNodeType.Sink, "join": WorkflowNodeType.Aggregator}
    for item in nodes:
        item.node_type = kinds.get(item.node_id, WorkflowNodeType.Processor)
    nodes[4].input_ports, nodes[4].output_ports = ["person"], ["text"]
    connections = [
        edge("start", "a"),
        edge("start", "b"),
        edge("start", "c"),
        edge("a", "hello", target_port="person"),
        edge("hello", "join", source_port="text"),
        edge("b", "join"),
        edge("c", "join"),
        edge("start", "join"),
        edge("join", "check"),
        edge("check", "high", condition="node == 'check'"),
        edge("check", "low", condition="node != 'check'"),
        edge("high", "end"),
        edge("low", "end"),
        edge("start", "end"),
        edge("a", "end"),
    ]
    return workflow(workflow_id, nodes, connections, mode=WorkflowExecutionMode.Conditional)


def skip_one(workflow_id: str) -> PluginWorkflow:
    """who -> hello -> done and who -> done: the designer test's graph, a straight line with
    an edge over the middle node."""
    return workflow(
        workflow_id,
        [node("who"), node("hello"), node("done")],
        [edge("who", "hello"), edge("hello", "done"), edge("who", "done")],
        mode=WorkflowExecutionMode.Sequential,
    )


async def test_auto_layout_keeps_edges_clear_of_nodes(
    page: Any, studio: StudioServer, orchestrator: AdvancedPluginOrchestrator, unique
) -> None:
    for definition in (skip_one(unique("skip-one")), branching(unique("branching"))):
        # Without saved positions the definition's page lays it out.
        await orchestrator.register_workflow(definition)
        problems = await shown(page, studio, definition)
        assert not problems, f"shown {definition.workflow_id}: {problems}"
        await shot(page, f"layout-auto-{definition.workflow_id.rsplit('-', 1)[0]}")

        # The same through the designer's Auto-layout button.
        await designed(page, studio, definition)
        await page.get_by_test_id("layout-button").click()
        problems = await drawn(page, "designer-canvas", definition)
        assert not problems, f"laid out {definition.workflow_id}: {problems}"
    await shot(page, "layout-auto-branching-designer")

    # The monitor draws it the same, its nodes a line taller (durations, counters).
    from playwright.async_api import expect

    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    final = await orchestrator.wait_for_completion(execution_id, 60)
    await page.goto(f"{studio.url}/#/executions/{execution_id}")
    status = page.get_by_test_id("execution-status")
    await expect(status).to_have_attribute("data-status", final.status.value)
    problems = await drawn(page, "monitor-canvas", definition)
    assert not problems, f"monitored {definition.workflow_id}: {problems}"
    await shot(page, "layout-auto-branching-monitor")


async def test_the_monitor_of_an_ended_run_draws_its_edges_every_time(
    page: Any, studio: StudioServer, orchestrator: AdvancedPluginOrchestrator, unique
) -> None:
    """Opening an ended run replays all its events at once; nodes rebuilt while React Flow
    measured them once lost their handles for good, and then no edge was drawn (about one
    load in ten). Loaded a dozen times, every load draws every edge."""
    from playwright.async_api import expect

    definition = branching(unique("replayed"))
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await orchestrator.wait_for_completion(execution_id, 60)
    edges = page.locator('[data-testid="monitor-canvas"] .react-flow__edge')
    for _ in range(12):
        await page.goto("about:blank")
        await page.goto(f"{studio.url}/#/executions/{execution_id}")
        await expect(edges).to_have_count(len(definition.connections), timeout=10_000)
