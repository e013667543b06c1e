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
  dropped field. ``version`` must be a JSON integer (``"7"`` is not coerced).
* Text is read with :meth:`_JsonModel.from_json_text` (:func:`load_json_text`), which refuses
  what JSON parsers disagree on instead of guessing: duplicate keys (Python keeps the last,
  others the first), ``NaN`` and ``Infinity``, numbers outside 64-bit integers or finite
  doubles (``1e400``, an integer of 5,000 digits), invalid UTF-8, and text over
  :data:`MAX_JSON_TEXT_BYTES`. :func:`find_json_problem` checks a value built in Python the
  same way (and its nesting, :data:`MAX_JSON_DEPTH`).

This module imports nothing from Temporal: it is shared by client, workflow and activities.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.base.errors import PluginError, PluginErrorCode


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

    @property
    def is_long_running(self) -> bool:
        """EventDriven and Streaming runs go on until cancelled (or their source ends), with
        sources, passes or streams instead of one pass over the graph."""
        return self in (WorkflowExecutionMode.EventDriven, WorkflowExecutionMode.Streaming)


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
    # Waiting for a slot of its definition's max_concurrent_executions (not in the spec; last,
    # so the spec's integer values keep their meaning).
    Queued = "queued"

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


# -- strict JSON -------------------------------------------------------------------------------

# Nesting of one value (a node's configuration, a connection's properties, input data): far
# beyond any real configuration, and far below where recursive encoders give up (pydantic at
# about 250 levels, Python's json module near 1,000).
MAX_JSON_DEPTH = 64
# Integers are 64-bit signed, as CEL, protobuf and Go (the Temporal server and CLI) read them.
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**63 - 1
# Raw text of a definition file: four times the compact definition limit (1.2 MB, see
# engine.language.validation.MAX_DEFINITION_BYTES) leaves room for indentation.
MAX_JSON_TEXT_BYTES = 5_000_000
# Values walked in one check; every JSON value takes at least two bytes of text, so more than
# this many is over any size limit, however the value shares or repeats its parts.
MAX_JSON_VALUES = 2_500_000
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


class _Refused(ValueError):
    """Raised by the JSON hooks; the message names what is refused."""


def load_json_text(
    text: str | bytes,
    *,
    what: str = "the JSON text",
    code: PluginErrorCode = PluginErrorCode.InvalidWorkflowStructure,
    max_bytes: int = MAX_JSON_TEXT_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Parse JSON text strictly: the value, or a :class:`PluginError` with ``code``.

    Refused: text over ``max_bytes`` bytes, invalid UTF-8, syntax errors (with line and
    column), duplicate keys in one object, ``NaN``/``Infinity``, integers outside 64 bits,
    numbers too large for a double, lone surrogates (``"\\ud800"``), and nesting deeper than
    ``max_depth``.
    """
    if isinstance(text, bytes) or text.isascii():
        size = len(text)
    else:
        size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise PluginError(code, f"{what} is {size:,} bytes; the limit is {max_bytes:,}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PluginError(
                code, f"{what} is not UTF-8: {exc.reason} at byte {exc.start:,}"
            ) from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_int64,
        )
    except _Refused as exc:
        raise PluginError(code, f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PluginError(
            code, f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        depth = _text_depth(text)
        raise PluginError(
            code, f"{what} nests {depth:,} levels deep; the limit is {max_depth}"
        ) from None
    if problem := find_json_problem(value, max_depth=max_depth):
        raise PluginError(code, f"{what}: {problem}")
    return value


def find_json_problem(
    value: Any,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    max_values: int = MAX_JSON_VALUES,
    path: str = "",
) -> str | None:
    """What makes ``value`` not plain JSON, as ``"<path> <reason>"``, or None.

    Plain JSON: dicts with string keys, lists, strings that are valid Unicode (no lone
    surrogates), booleans, None, integers within 64 bits and finite floats; containers nested
    at most ``max_depth`` levels (the value itself is level 1). Iterative, and it stops after
    ``max_values`` values, so a value that is deep, refers to itself, or shares parts many
    times over cannot exhaust the stack or run for long.
    """
    return json_problem_and_count(value, max_depth, max_values, path)[0]


def json_problem_and_count(
    value: Any, max_depth: int, max_values: int, path: str = ""
) -> tuple[str | None, int]:
    """:func:`find_json_problem`, also returning how many values it looked at."""
    if not isinstance(value, dict | list):
        problem = _scalar_problem(value)
        return (f"{path or 'the value'} {problem}" if problem else None), 1
    # Each entry: a container, its depth, and its trail (parent trail, key) for messages.
    stack: list[tuple[Any, int, tuple[Any, Any]]] = [(value, 1, (None, path))]
    seen = 0
    while stack:
        current, depth, trail = stack.pop()
        if depth > max_depth:
            return f"{_path(trail)} nests more than {max_depth} levels deep", seen
        seen += len(current)
        if seen > max_values:
            return f"{_path(trail)} holds more than {max_values:,} values", seen
        if isinstance(current, dict):
            for key in current:
                if problem := _key_problem(key):
                    return f"{_path(trail)} {problem}", seen
            items: Any = current.items()
        else:
            items = enumerate(current)
        for key, item in items:
            if isinstance(item, dict | list):
                stack.append((item, depth + 1, (trail, key)))
            elif problem := _scalar_problem(item):
                return f"{_path((trail, key))} {problem}", seen
    return None, seen


def _key_problem(key: Any) -> str | None:
    if type(key) is str and key.isascii():
        return None
    if not isinstance(key, str):
        return f"has the key {key!r} of type {type(key).__name__}; JSON keys are strings"
    if not key.isascii() and (problem := _scalar_problem(key)):
        return f"has a key that {problem}"
    return None


def _path(trail: tuple[Any, Any]) -> str:
    keys: list[Any] = []
    while trail[0] is not None:
        trail, key = trail
        keys.append(key)
    text = trail[1]
    for key in reversed(keys):
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    if len(text) > 200:
        text = text[:100] + "..." + text[-97:]
    return text or "the value"


def _scalar_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (
                f"contains the lone surrogate U+{ord(value[exc.start]):04X}, which is not "
                "Unicode text"
            )
        return None
    if isinstance(value, int):
        if MIN_JSON_INT <= value <= MAX_JSON_INT:
            return None
        return f"is an integer of {_digits(value):,} digits, outside the 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"is {value!r}, which is not a JSON number"
    if isinstance(value, tuple):
        return "is a tuple; JSON has lists"
    return f"is of type {type(value).__name__}, which JSON does not have"


def _digits(value: int) -> int:
    # Without str(): converting an integer of over 4,300 digits to text raises.
    return max(1, math.floor(abs(value).bit_length() * math.log10(2)) + 1)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(
                    f"duplicate key {key!r} in one object (parsers disagree on which value "
                    "wins, so none is taken)"
                )
            seen.add(key)
    return result


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is too large for a double")
    return value


def _int64(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > 19:
        raise _Refused(f"an integer of {digits:,} digits is outside the 64-bit range")
    value = int(text)
    if not MIN_JSON_INT <= value <= MAX_JSON_INT:
        raise _Refused(f"the integer {text} is outside the 64-bit range")
    return value


def _text_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text (only called for text too deep to parse)."""
    depth = deepest = 0
    for match in re.finditer(r"[\[\]{}]", _STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


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

    @classmethod
    def from_json_text(cls, text: str | bytes, *, source: str = "") -> Self:
        """Build the model from JSON text, read strictly (see :func:`load_json_text`).

        Args:
            text: The JSON text.
            source: Where it comes from (a file name), for messages.

        Raises:
            PluginError: ``InvalidWorkflowStructure`` naming the problem.
        """
        what = source or f"the {cls.__name__} JSON"
        # The model's own levels (a definition's nodes list and node) come on top of the
        # levels a configuration may nest.
        data = load_json_text(text, what=what, max_depth=MAX_JSON_DEPTH + 3)
        return cls.from_json(data)


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


class NodeCompensation(_JsonModel):
    """The step that undoes a node (a saga's compensation): a plugin and its configuration.

    When a batch execution fails or is cancelled, the compensations of its nodes that
    completed run in reverse order of completion (:mod:`engine.runtime.compensation`). The
    configuration is read like a node's: merged over ``global_configuration``, with the
    engine's keys ``retry``, ``timeout`` and ``heartbeat_timeout`` for the compensation's
    own retries and timeouts; the plugin sees the rest. It is an addition to the spec.
    """

    plugin_id: str = ""
    configuration: dict[str, Any] = Field(default_factory=dict)


class WorkflowNode(_JsonModel):
    """One node of the graph: a plugin call with its configuration and ports.

    ``compensation`` (an addition to the spec, batch modes only) names the step that undoes
    the node when the execution fails or is cancelled after it completed.
    """

    node_id: str = ""
    name: str = ""
    description: str = ""
    plugin_id: str = ""
    node_type: WorkflowNodeType = WorkflowNodeType.Processor
    configuration: dict[str, Any] = Field(default_factory=dict)
    ui_properties: dict[str, Any] = Field(default_factory=dict)
    input_ports: list[str] = Field(default_factory=list)
    output_ports: list[str] = Field(default_factory=list)
    compensation: NodeCompensation | None = None


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
    version: int = Field(0, strict=True)

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
    # A new version the execution did not adopt (details: version and reason).
    definition_refused = "definition_refused"
    # Events a signal brought that the execution did not take (details: how many, why).
    events_refused = "events_refused"
    # Batch modes: a completed node's compensation (node_id; details: plugin_id, attempts).
    compensation_started = "compensation_started"
    compensation_completed = "compensation_completed"
    compensation_failed = "compensation_failed"

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
