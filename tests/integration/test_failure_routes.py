"""Failures as part of the graph, on the real server: error routes, optional nodes, and a
Decision's default route."""

from __future__ import annotations

from engine import AdvancedPluginOrchestrator, ConnectionType, WorkflowExecutionStatus
from tests.helpers.builders import edge, node, workflow

Status = WorkflowExecutionStatus


async def test_an_error_route_handles_the_failure(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    on_error = edge("charge", "refund")
    on_error.properties = {"on": "error"}
    definition = workflow(
        unique("catch"),
        [
            node("order", "echo", emit={"id": 7}),
            node(
                "charge",
                "fail",
                message="card declined",
                retry={"max_attempts": 2, "initial_interval": 0.1},
            ),
            node("ship"),
            node("refund"),
        ],
        [edge("order", "charge"), edge("charge", "ship"), on_error],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is Status.Completed, context.error_messages
    assert context.node_states["ship"]["status"] == "skipped"
    assert context.node_states["charge"]["error"]["handled"] is True
    error = context.execution_data["results"]["refund"]["inputs"]["charge"]
    assert error["type"] == "ValueError"
    assert error["message"] == "card declined"
    assert error["attempts"] == 2
    assert error["input"]["order"]["id"] == 7


async def test_optional_node_and_decision_default(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    otherwise = edge("route", "manual")
    otherwise.connection_type = ConnectionType.Control
    otherwise.properties = {"default": True}
    definition = workflow(
        unique("optional"),
        [
            node("enrich", "fail", optional=True, retry={"max_attempts": 1}),
            node("route", "echo", emit={"kind": "unknown"}),
            node("auto"),
            node("manual"),
        ],
        [
            edge("enrich", "route", target_port="enriched"),
            edge("route", "auto", condition="kind == 'standard'"),
            otherwise,
        ],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id, {"seed": 1})
    context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is Status.Completed, context.error_messages
    assert context.node_states["enrich"]["status"] == "failed"
    assert context.node_states["route"]["result"]["inputs"] == {}  # nothing from enrich
    assert context.node_states["auto"]["status"] == "skipped"
    assert context.node_states["manual"]["status"] == "completed"
