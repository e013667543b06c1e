"""The spec's data structures as pydantic v2 models, with JSON in and out.

Names and fields follow QtForge's ``plugin_orchestrator_v2`` reference exactly. Models can be
built field by field, as in the spec (``node = WorkflowNode(); node.node_id = "x"``), or with
keywords; assignments are validated. ``to_json()`` returns a plain dict and ``from_json()``
reads one back losslessly.

Enums keep the spec's member names (``WorkflowExecutionMode.EventDriven``) and serialise as
lower snake_case strings (``"event_driven"``). ``from_json`` also accepts the member name and
the integer QtForge's C++ serialisers write (declaration order, ``Sequential`` = 0).

Decisions where the spec is silent:

* ``WorkflowNode.node_type`` defaults to ``Processor`` (the common case; C++ would leave it
  uninitialised) and ``WorkflowConnection.connection_type`` to ``DataFlow``.
* ``PluginWorkflow.version`` is an addition: the registry sets it (1 on registration, +1 per
  modification); a value supplied on registration is ignored.
* Unknown keys are rejected, so a typo such as ``"conection_type"`` is an error, not a silently
  dropped field.

This module imports nothing from Temporal: it is shared by client, workflow and activities.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import PluginError, PluginErrorCode


class _SpecEnum(StrEnum):
    """A string enum that also reads QtForge's integer values and the member names."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        # bool is an int subclass; True must not mean member 1.
        if isinstance(value, int) and not isinstance(value, bool):
            members = list(cls)
            if 0 <= value < len(members):
                return members[value]
        if isinstance(value, str):
            for member in cls:
                if member.name == value:
                    return member
        return None


class WorkflowExecutionMode(_SpecEnum):
    """How the interpreter schedules a workflow's nodes."""

    Sequential = "sequential"
    Parallel = "parallel"
    Conditional = "conditional"
    EventDriven = "event_driven"
    Streaming = "streaming"


class WorkflowNodeType(_SpecEnum):
    """The role a node plays in the graph."""

    Source = "source"
    Processor = "processor"
    Sink = "sink"
    Decision = "decision"
    Aggregator = "aggregator"
    Splitter = "splitter"
    Custom = "custom"


class ConnectionType(_SpecEnum):
    """What a connection carries: data, a (conditional) go-ahead, events or ordering only."""

    DataFlow = "data_flow"
    Control = "control"
    Event = "event"
    Dependency = "dependency"


class WorkflowExecutionStatus(_SpecEnum):
    """Lifecycle of one execution."""

    Pending = "pending"
    Running = "running"
    Paused = "paused"
    Completed = "completed"
    Failed = "failed"
    Cancelled = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for Completed, Failed and Cancelled."""
        return self in _TERMINAL_STATUSES


_TERMINAL_STATUSES = frozenset(
    {
        WorkflowExecutionStatus.Completed,
        WorkflowExecutionStatus.Failed,
        WorkflowExecutionStatus.Cancelled,
    }
)


class _JsonModel(BaseModel):
    """Base: validated assignment, no unknown keys, ``to_json``/``from_json``."""

    model_config = ConfigDict(
        validate_assignment=True,
        extra="forbid",
        use_enum_values=False,
        ser_json_inf_nan="strings",
    )

    def to_json(self) -> dict[str, Any]:
        """Return the model as a JSON-compatible dict (enums as snake_case strings)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Build the model from a dict as written by ``to_json`` or by QtForge.

        Raises:
            PluginError: ``InvalidWorkflowStructure`` naming every bad field.
        """
        if not isinstance(data, dict):
            raise PluginError(
                PluginErrorCode.InvalidWorkflowStructure,
                f"{cls.__name__} JSON must be an object, got {type(data).__name__}",
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PluginError(
                PluginErrorCode.InvalidWorkflowStructure,
                f"invalid {cls.__name__}: {describe_validation_error(exc)}",
                {"errors": [_error_entry(e) for e in exc.errors()[:20]]},
            ) from None


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """One line per problem, ``location: message``, at most ``limit`` of them."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _error_entry(err: Any) -> dict[str, Any]:
    return {"loc": [str(p) for p in err["loc"]], "msg": str(err["msg"])}


class WorkflowNode(_JsonModel):
    """One node of the graph: a plugin call with its configuration and ports."""

    node_id: str = ""
    name: str = ""
    description: str = ""
    plugin_id: str = ""
    node_type: WorkflowNodeType = WorkflowNodeType.Processor
    configuration: dict[str, Any] = Field(default_factory=dict)
    ui_properties: dict[str, Any] = Field(default_factory=dict)
    input_ports: list[str] = Field(default_factory=list)
    output_ports: list[str] = Field(default_factory=list)


class WorkflowConnection(_JsonModel):
    """A directed edge between two nodes, optionally between named ports."""

    connection_id: str = ""
    source_node: str = ""
    source_port: str = ""
    target_node: str = ""
    target_port: str = ""
    connection_type: ConnectionType = ConnectionType.DataFlow
    properties: dict[str, Any] = Field(default_factory=dict)

    def label(self) -> str:
        """How messages name this connection: its id, or ``source -> target``."""
        if self.connection_id:
            return f"connection '{self.connection_id}'"
        src = f"{self.source_node}.{self.source_port}" if self.source_port else self.source_node
        dst = f"{self.target_node}.{self.target_port}" if self.target_port else self.target_node
        return f"connection '{src}' -> '{dst}'"


class PluginWorkflow(_JsonModel):
    """A graph workflow definition: nodes, connections, mode and configuration."""

    workflow_id: str = ""
    name: str = ""
    description: str = ""
    execution_mode: WorkflowExecutionMode = WorkflowExecutionMode.Sequential
    nodes: list[WorkflowNode] = Field(default_factory=list)
    connections: list[WorkflowConnection] = Field(default_factory=list)
    global_configuration: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = 0

    def node(self, node_id: str) -> WorkflowNode | None:
        """The node with this id, or None."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        return None


class WorkflowExecutionContext(_JsonModel):
    """State of one execution, as returned by ``get_execution_status``.

    ``execution_data`` holds ``input_data``, ``workflow_version`` and, once known,
    ``results`` (outputs of the nodes with no outgoing DataFlow connection, by node id).
    ``node_states`` holds one dict per node, the same dicts ``get_node_status`` returns.
    """

    execution_id: str = ""
    workflow_id: str = ""
    status: WorkflowExecutionStatus = WorkflowExecutionStatus.Pending
    start_time: datetime | None = None
    end_time: datetime | None = None
    execution_data: dict[str, Any] = Field(default_factory=dict)
    node_states: dict[str, dict[str, Any]] = Field(default_factory=dict)
    progress: float = 0.0
    current_node: str = ""
    error_messages: list[str] = Field(default_factory=list)


class WorkflowEventType(StrEnum):
    """The spec's Qt signals, as event types of :meth:`AdvancedPluginOrchestrator.events`."""

    workflow_started = "workflow_started"
    node_started = "node_started"
    node_completed = "node_completed"
    node_failed = "node_failed"
    node_skipped = "node_skipped"
    node_cancelled = "node_cancelled"
    execution_progress_updated = "execution_progress_updated"
    workflow_paused = "workflow_paused"
    workflow_resumed = "workflow_resumed"
    workflow_completed = "workflow_completed"
    workflow_failed = "workflow_failed"
    workflow_cancelled = "workflow_cancelled"
    # Long-running modes.
    event_received = "event_received"
    event_processed = "event_processed"
    definition_updated = "definition_updated"

    @property
    def is_terminal(self) -> bool:
        """True for the three events that end a stream."""
        return self in _TERMINAL_EVENTS


_TERMINAL_EVENTS = frozenset(
    {
        WorkflowEventType.workflow_completed,
        WorkflowEventType.workflow_failed,
        WorkflowEventType.workflow_cancelled,
    }
)


class WorkflowEvent(_JsonModel):
    """One event of an execution's stream; ``sequence`` counts from 1 without gaps."""

    type: WorkflowEventType
    execution_id: str = ""
    workflow_id: str = ""
    sequence: int
    timestamp: datetime
    node_id: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    progress: float | None = None
    details: dict[str, Any] | None = None
