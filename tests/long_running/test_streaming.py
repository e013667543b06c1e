"""Streaming executions on the real server."""

from __future__ import annotations

from pathlib import Path

from engine import (
    AdvancedPluginOrchestrator,
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from tests.helpers.builders import edge, node
from tests.helpers.plugins import read_jsonl

Status = WorkflowExecutionStatus


def _pipeline(
    workflow_id: str, count: int | None, delay: float = 0.0, **settings: object
) -> PluginWorkflow:
    source = WorkflowNode(
        node_id="source",
        plugin_id="numbers",
        node_type=WorkflowNodeType.Source,
        configuration={"count": count, "delay": delay},
    )
    return PluginWorkflow(
        workflow_id=workflow_id,
        execution_mode=WorkflowExecutionMode.Streaming,
        nodes=[source, node("double", "double"), node("sink", "collect", name=workflow_id)],
        connections=[edge("source", "double"), edge("double", "sink")],
        global_configuration={"batch_size": 50, "batch_max_wait": 0.05, **settings},
    )


async def test_finite_stream_completes(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = _pipeline(unique("stream"), 1000)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    assert context.status is Status.Completed, context.error_messages
    items = read_jsonl(tmp_path, definition.workflow_id)
    assert sorted(item["n"] for item in items) == [2 * n for n in range(1000)]
    counters = context.node_states["double"]["counters"]
    assert counters["items_in"] == 1000
    assert counters["items_out"] == 1000
    assert context.node_states["sink"]["counters"]["items_out"] == 1000
    assert context.node_states["source"]["counters"]["batches"] >= 20
    events = [e.type.value async for e in orchestrator.events(execution_id)]
    assert events[0] == "workflow_started"
    assert events[-1] == "workflow_completed"
