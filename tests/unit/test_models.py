"""Models: the spec's names, field-by-field building, JSON round trips, QtForge integers."""

from __future__ import annotations

import json

import pytest

import engine
from engine import (
    ConnectionType,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionContext,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)


def test_public_names_are_exported() -> None:
    expected = {
        "AdvancedPluginOrchestrator",
        "PluginWorkflow",
        "WorkflowNode",
        "WorkflowConnection",
        "WorkflowExecutionContext",
        "WorkflowExecutionMode",
        "WorkflowNodeType",
        "ConnectionType",
        "WorkflowExecutionStatus",
        "PluginError",
        "PluginErrorCode",
        "validate_workflow",
    }
    assert expected <= set(engine.__all__)
    for name in expected:
        assert getattr(engine, name) is not None


def test_enum_members_keep_spec_names_and_write_snake_case() -> None:
    assert WorkflowExecutionMode.Streaming.value == "streaming"
    assert WorkflowExecutionMode.EventDriven.value == "event_driven"
    assert WorkflowNodeType.Source.value == "source"
    assert ConnectionType.DataFlow.value == "data_flow"
    assert WorkflowExecutionStatus.Paused.value == "paused"
    assert [m.name for m in WorkflowExecutionMode] == [
        "Sequential",
        "Parallel",
        "Conditional",
        "EventDriven",
        "Streaming",
    ]
    assert [m.name for m in ConnectionType] == ["DataFlow", "Control", "Event", "Dependency"]


def test_field_by_field_building_as_in_the_spec() -> None:
    workflow = PluginWorkflow()
    workflow.workflow_id = "advanced_pipeline"
    workflow.name = "Advanced Data Pipeline"
    workflow.execution_mode = WorkflowExecutionMode.Streaming
    node = WorkflowNode()
    node.node_id = "input"
    node.plugin_id = "data_source"
    node.node_type = WorkflowNodeType.Source
    node.output_ports = ["raw_data"]
    workflow.nodes.append(node)
    conn = WorkflowConnection()
    conn.source_node = "input"
    conn.target_node = "process"
    conn.connection_type = ConnectionType.DataFlow
    workflow.connections = [conn]
    assert workflow.nodes[0].node_type is WorkflowNodeType.Source
    assert workflow.connections[0].connection_type is ConnectionType.DataFlow


def test_assignment_is_validated() -> None:
    node = WorkflowNode()
    node.node_type = 2  # QtForge's integer for Sink
    assert node.node_type is WorkflowNodeType.Sink
    with pytest.raises(ValueError, match="node_type"):
        node.node_type = "nonsense"


def test_defaults() -> None:
    node = WorkflowNode()
    assert (node.node_id, node.node_type, node.configuration, node.input_ports) == (
        "",
        WorkflowNodeType.Processor,
        {},
        [],
    )
    assert WorkflowConnection().connection_type is ConnectionType.DataFlow
    assert PluginWorkflow().execution_mode is WorkflowExecutionMode.Sequential
    context = WorkflowExecutionContext()
    assert context.progress == 0.0
    assert context.status is WorkflowExecutionStatus.Pending


def _full_workflow() -> PluginWorkflow:
    return PluginWorkflow(
        workflow_id="w",
        name="W",
        description="d",
        execution_mode=WorkflowExecutionMode.Conditional,
        nodes=[
            WorkflowNode(
                node_id="a",
                name="A",
                description="first",
                plugin_id="p",
                node_type=WorkflowNodeType.Decision,
                configuration={"x": [1, 2.5, None, {"y": "é"}]},
                ui_properties={"x": 10, "y": 20},
                input_ports=["in"],
                output_ports=["out", "err"],
            ),
            WorkflowNode(node_id="b", plugin_id="p"),
        ],
        connections=[
            WorkflowConnection(
                connection_id="c1",
                source_node="a",
                source_port="out",
                target_node="b",
                target_port="",
                connection_type=ConnectionType.Control,
                properties={"condition": "ok == true"},
            )
        ],
        global_configuration={"retry": {"max_attempts": 2}},
        metadata={"owner": "me"},
        version=3,
    )


def test_json_round_trip_is_lossless() -> None:
    workflow = _full_workflow()
    data = workflow.to_json()
    assert data["execution_mode"] == "conditional"
    assert data["nodes"][0]["node_type"] == "decision"
    assert data["connections"][0]["connection_type"] == "control"
    # Through real JSON text and back.
    again = PluginWorkflow.from_json(json.loads(json.dumps(data)))
    assert again == workflow
    assert again.to_json() == data
    for model in (workflow.nodes[0], workflow.connections[0]):
        assert type(model).from_json(model.to_json()) == model


def test_from_json_accepts_qtforge_integers_and_member_names() -> None:
    data = _full_workflow().to_json()
    data["execution_mode"] = 3
    data["nodes"][0]["node_type"] = 0
    data["connections"][0]["connection_type"] = "Dependency"
    workflow = PluginWorkflow.from_json(data)
    assert workflow.execution_mode is WorkflowExecutionMode.EventDriven
    assert workflow.nodes[0].node_type is WorkflowNodeType.Source
    assert workflow.connections[0].connection_type is ConnectionType.Dependency


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"execution_mode": 9}, "execution_mode"),
        ({"execution_mode": True}, "execution_mode"),
        ({"nodes": "abc"}, "nodes"),
        ({"conection_type": 1}, "conection_type"),
        ({"nodes": [{"node_id": 5}]}, "nodes.0.node_id"),
    ],
)
def test_from_json_errors_name_the_field(patch: dict[str, object], fragment: str) -> None:
    data = {"workflow_id": "w", **patch}
    with pytest.raises(PluginError) as info:
        PluginWorkflow.from_json(data)
    assert info.value.code is PluginErrorCode.InvalidWorkflowStructure
    assert fragment in info.value.message


def test_from_json_rejects_non_objects() -> None:
    with pytest.raises(PluginError, match="must be an object"):
        PluginWorkflow.from_json([1, 2])  # type: ignore[arg-type]


def test_execution_context_round_trip() -> None:
    context = WorkflowExecutionContext(
        execution_id="e",
        workflow_id="w",
        status=WorkflowExecutionStatus.Failed,
        node_states={"a": {"status": "failed", "attempts": 3}},
        progress=0.5,
        error_messages=["boom"],
    )
    assert WorkflowExecutionContext.from_json(context.to_json()) == context
    assert context.to_json()["status"] == "failed"


def test_plugin_error_carries_code_and_message() -> None:
    error = PluginError(PluginErrorCode.NodeNotFound, "node 'x' is missing")
    assert str(error) == "NodeNotFound: node 'x' is missing"
    assert PluginError.from_type("NodeNotFound", "m").code is PluginErrorCode.NodeNotFound
    assert PluginError.from_type("SomethingElse", "m").code is PluginErrorCode.ExecutionFailed
