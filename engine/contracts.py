"""What crosses the Temporal boundary: type names, ids, and the payload models.

Client, workflows and activities agree on these and on nothing else. Every payload is one
pydantic model, and new fields get defaults, so histories recorded by older versions still
decode (the replay tests under ``tests/replay`` hold us to it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from engine.models import (
    PluginWorkflow,
    WorkflowConnection,
    WorkflowEvent,
    WorkflowExecutionContext,
    WorkflowNode,
)

EXECUTION_WORKFLOW = "PluginWorkflowExecution"
DEFINITION_WORKFLOW = "PluginWorkflowDefinition"
NODE_ACTIVITY = "run_plugin_node"
DEFAULT_TASK_QUEUE = "plugin-orchestrator"

# Temporal rejects payloads over 2 MB; keep node outputs and inputs well below that.
MAX_PAYLOAD_BYTES = 1_500_000
# The execution's input travels in its start event, next to the definition
# (engine.validation.MAX_DEFINITION_BYTES).
MAX_INPUT_BYTES = 500_000


def compact(model: BaseModel) -> dict[str, Any]:
    """The wire form of a model: JSON without fields at their defaults (about a quarter of
    the full form for definitions); reading it back gives an equal model."""
    return model.model_dump(mode="json", exclude_defaults=True)


_DEFINITION_MARK = "/definition@"


def definition_entity_id(workflow_id: str, task_queue: str) -> str:
    """Temporal workflow id of the registry entity holding a definition.

    The registry is scoped by task queue, the unit a fleet of workers serves: the entity runs
    on that queue, so whoever can run the definition can also read it.
    """
    return f"{workflow_id}{_DEFINITION_MARK}{task_queue}"


def workflow_id_of_entity(entity_id: str) -> str:
    """Inverse of :func:`definition_entity_id` (workflow ids never contain ``/``)."""
    return entity_id.split(_DEFINITION_MARK, 1)[0]


def execution_id_for(workflow_id: str, unique: str) -> str:
    """Temporal workflow id of an execution: it starts with the definition's id."""
    return f"{workflow_id}/run-{unique}"


class _Contract(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ExecutionInput(_Contract):
    """Start argument of the execution workflow: the definition snapshot and the input."""

    workflow: PluginWorkflow
    input_data: dict[str, Any] = Field(default_factory=dict)

    @field_serializer("workflow")
    def _compact_workflow(self, workflow: PluginWorkflow) -> dict[str, Any]:
        return compact(workflow)


class ExecutionOutcome(_Contract):
    """Everything known about a finished run: its final context and its events.

    Events are stored without results; readers fill them in from the context
    (:func:`engine.events.with_results`), so results are not stored twice.
    """

    context: WorkflowExecutionContext
    events: list[WorkflowEvent] = Field(default_factory=list)
    truncated: bool = False

    @field_serializer("events")
    def _compact_events(self, events: list[WorkflowEvent]) -> list[dict[str, Any]]:
        return [compact(event) for event in events]


class EventsPage(_Contract):
    """Answer of the ``events`` query: events after a sequence number."""

    events: list[WorkflowEvent] = Field(default_factory=list)
    last_sequence: int = 0

    @field_serializer("events")
    def _compact_events(self, events: list[WorkflowEvent]) -> list[dict[str, Any]]:
        return [compact(event) for event in events]


class NodeActivityInput(_Contract):
    """Argument of the node activity."""

    execution_id: str
    workflow_id: str
    node_id: str
    node_name: str = ""
    plugin_id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)


class NodeActivityResult(_Contract):
    """Result of the node activity: the plugin's output and the attempt that made it."""

    output: dict[str, Any]
    attempt: int = 1


class DefinitionState(_Contract):
    """State of a registry entity; carried across continue-as-new."""

    workflow: PluginWorkflow

    @field_serializer("workflow")
    def _compact_workflow(self, workflow: PluginWorkflow) -> dict[str, Any]:
        return compact(workflow)


class DefinitionChange(_Contract):
    """One modification of a registered definition (the spec's dynamic modification)."""

    kind: Literal["add_node", "remove_node", "add_connection", "replace"]
    node: WorkflowNode | None = None
    node_id: str = ""
    connection: WorkflowConnection | None = None
    workflow: PluginWorkflow | None = None
