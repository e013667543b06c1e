"""What crosses the Temporal boundary: type names, ids, and the payload models.

Client, workflows and activities agree on these and on nothing else. Every payload is one
pydantic model, and new fields get defaults, so histories recorded by older versions still
decode (the replay tests under ``tests/replay`` hold us to it). One wire form is smaller than
its model's plain JSON: the node activity's lean input (:func:`lean_node_request`, a dict the
activity reads as a :class:`NodeActivityInput`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_serializer,
    model_serializer,
    model_validator,
)
from pydantic_core import to_json

from engine.language.models import (
    PluginWorkflow,
    WorkflowEvent,
    WorkflowExecutionContext,
)
from engine.language.options import NodeOptions
from engine.runtime import outcome_pack

EXECUTION_WORKFLOW = "PluginWorkflowExecution"
DEFINITION_WORKFLOW = "PluginWorkflowDefinition"
NODE_ACTIVITY = "run_plugin_node"
# One activity per batch of a batched Splitter map's items (engine.runtime.map_batch).
NODE_BATCH_ACTIVITY = "run_plugin_batch"
DEFAULT_TASK_QUEUE = "plugin-orchestrator"

# Temporal rejects payloads over 2 MB; keep node outputs and inputs well below that.
MAX_PAYLOAD_BYTES = 1_500_000
# The execution's input travels in its start event, next to the definition
# (engine.language.validation.MAX_DEFINITION_BYTES).
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


class MapShard(_Contract):
    """A shard of a large Splitter map, run as a child execution: ``items`` are the map's
    items from ``offset`` on."""

    splitter: str
    items: list[Any]
    offset: int = 0
    max_concurrency: int = 50
    pass_id: int = 0
    # A batched map's shard: its items go to the body node in batches of this many.
    batch_size: int | None = None


class EarlierRecords(_Contract):
    """What a retried batch execution keeps of its earlier runs, so that it reports them as
    one execution (:meth:`engine.runtime.interpreter.Interpreter.continue_from`)."""

    # When the execution first started (ISO 8601; None if its earlier run never said).
    start_time: str | None = None
    # Node records (status, attempts, started_at, completed_at, skipped_by_operator) without
    # results: those of completed nodes travel in ``ExecutionInput.completed``.
    nodes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Nodes an operator completed with an output (``skip_node``; the output is in
    # ``ExecutionInput.completed``).
    skipped: list[str] = Field(default_factory=list)


class ExecutionInput(_Contract):
    """Start argument of the execution workflow: the definition snapshot and the input, and
    for a long-running execution continuing as new, the state it carries."""

    workflow: PluginWorkflow
    input_data: dict[str, Any] = Field(default_factory=dict)
    state: LongRunState | None = None
    # Definitions of the workflows its ``subworkflow`` nodes run (resolved at start).
    subworkflows: dict[str, PluginWorkflow] = Field(default_factory=dict)
    # Set when this execution is a shard of a parent's Splitter map.
    map_shard: MapShard | None = None
    # A retry of a failed run: nodes that had completed, with their outputs, are not run again.
    completed: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # A retry: what the earlier runs recorded of its nodes (None in histories recorded before).
    earlier: EarlierRecords | None = None
    # The starter found the engine's search attributes registered (engine.temporal.telemetry): the
    # run keeps ``OrchestratorStatus`` up to date. False in histories recorded before them.
    search_attributes: bool = False
    # A batch run continued as new: where it stopped (None for a fresh start).
    batch_state: BatchRunState | None = None
    # The plugins the catalog marked light when the execution started (sorted): nodes with
    # ``execution: auto`` run them as local activities. Read once, carried to continued runs,
    # map shards and sub-workflows, so every replay decides the same. Empty in histories
    # recorded before (no definition had ``execution`` then).
    light_plugins: list[str] = Field(default_factory=list)

    @field_serializer("workflow")
    def _compact_workflow(self, workflow: PluginWorkflow) -> dict[str, Any]:
        return compact(workflow)


class ExecutionOutcome(_Contract):
    """Everything known about a finished run: its final context and its events.

    A batch run's events are stored without results; readers fill them in from the context
    (:func:`engine.runtime.events.with_results`), so results are not stored twice. A long-running
    run's events keep the result each pass produced, as they had it live
    (:func:`engine.client.executions.outcome_events`).

    ``format`` 2 writes it in the compact form of :mod:`engine.runtime.outcome_pack` (runs
    that began with the ``compact-outcome`` patch); reading takes either form.

    :meth:`sealed_size` computes the written form once and keeps it: the ending run measures
    its outcome against the payload limit and then hands it to the data converter, which
    writes that same form without computing it again (packing a 100-node outcome is most of
    the last workflow task's work). Changing a sealed outcome afterwards is not allowed;
    :meth:`unseal` drops the kept form.
    """

    context: WorkflowExecutionContext
    events: list[WorkflowEvent] = Field(default_factory=list)
    truncated: bool = False
    format: int = 1
    # The kept form, and what it was made of (a copy with other fields makes its own).
    _wire: tuple[tuple[int, int, bool, int], dict[str, Any]] | None = PrivateAttr(default=None)

    def _seal_key(self) -> tuple[int, int, bool, int]:
        return (id(self.context), id(self.events), self.truncated, self.format)

    def sealed_size(self) -> int:
        """Bytes of the outcome's JSON form (as ``model_dump_json`` writes it), now kept
        for every later serialization of this object."""
        self._wire = None
        wire: dict[str, Any] = self.model_dump(mode="json")
        size = len(to_json(wire))
        self._wire = (self._seal_key(), wire)
        return size

    def unseal(self) -> None:
        """Forget the form :meth:`sealed_size` kept (the outcome is about to change)."""
        self._wire = None

    def __eq__(self, other: object) -> bool:
        # The fields only: a sealed outcome equals the same outcome unsealed.
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, ExecutionOutcome)
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _unpacked(cls, data: Any) -> Any:
        # Only the wire form is unpacked: built from models (``ExecutionOutcome(context=...,
        # format=2)``), unpacking would copy the context, and changes made to the context
        # given would not reach the outcome (workflow._fit trims it in place).
        if (
            isinstance(data, dict)
            and data.get("format") == outcome_pack.FORMAT
            and not isinstance(data.get("context"), BaseModel)
        ):
            return outcome_pack.unpack(data)
        return data

    @model_serializer(mode="wrap")
    def _packed(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        if self._wire is not None and self._wire[0] == self._seal_key():
            return self._wire[1]
        if self.format != outcome_pack.FORMAT:
            plain: dict[str, Any] = handler(self)
            plain.pop("format", None)  # the plain form as it always was
            return plain
        context = self.context.model_dump(mode="json")
        return outcome_pack.pack(
            context,
            [],
            self.truncated,
            packed_events=outcome_pack.pack_event_models(self.events, context, compact),
        )

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
    """Argument of the node activity. Workflows send it in the lean form of
    :func:`lean_node_request` (older histories hold the full form); both read the same."""

    execution_id: str
    workflow_id: str
    node_id: str
    node_name: str = ""
    plugin_id: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    # The attempt a light node's workflow counts (it runs each attempt as a local activity of
    # its own, see engine.temporal.node_runner); 0, and left out of the payload, when Temporal
    # retries the activity and its own attempt number is the node's.
    attempt: int = Field(0, ge=0, exclude_if=lambda attempt: attempt == 0)


def lean_node_request(
    execution_id: str,
    workflow_id: str,
    node_id: str,
    plugin_id: str,
    inputs: dict[str, Any],
    config: dict[str, Any],
) -> dict[str, Any]:
    """The node activity's argument in its lean form: the JSON of a :class:`NodeActivityInput`
    (same keys, same order) without what the activity does not read or reads as a default:
    ``node_name`` (only the activity's summary shows it) and an empty ``config`` or
    ``inputs``. Workers of any version read it as a NodeActivityInput (those fields always
    had defaults). A plain dict: the data converter writes it without a model to build or a
    serializer to call, once per node."""
    request: dict[str, Any] = {
        "execution_id": execution_id,
        "workflow_id": workflow_id,
        "node_id": node_id,
        "plugin_id": plugin_id,
    }
    if inputs:
        request["inputs"] = inputs
    if config:
        request["config"] = config
    return request


class NodeActivityResult(_Contract):
    """Result of the node activity: the plugin's output and the attempt that made it."""

    output: dict[str, Any]
    attempt: int = 1


class BatchItemInput(_Contract):
    """One item of a batch: its index in the map and the body node's inputs for it."""

    index: int
    inputs: dict[str, Any] = Field(default_factory=dict)


class NodeBatchInput(_Contract):
    """Argument of the batch activity: one node's plugin over a batch of a map's items. Each
    item gets the node's retries (``options``) within the activity: an item's failure is its
    own, never the batch's."""

    execution_id: str
    workflow_id: str
    node_id: str
    node_name: str = ""
    plugin_id: str
    config: dict[str, Any] = Field(default_factory=dict)
    options: NodeOptions = Field(default_factory=NodeOptions)
    key: str  # the node's call key (node or node#pass): items' idempotency keys start with it
    splitter: str
    items: list[BatchItemInput] = Field(default_factory=list)
    concurrency: int = Field(1, ge=1, le=1000)  # items running at once


class BatchItemError(_Contract):
    """The error an item of a batch failed with for good (``position``: in the batch)."""

    position: int
    error_type: str
    error: str
    retryable: bool = False


class NodeBatchResult(_Contract):
    """Result of the batch activity, per item in the batch's order: its checked output (None
    when it failed) and the attempts it took; the failed items' errors."""

    outputs: list[dict[str, Any] | None] = Field(default_factory=list)
    attempts: list[int] = Field(default_factory=list)
    errors: list[BatchItemError] = Field(default_factory=list)


class SkipNode(_Contract):
    """Update ``skip_node``: complete a node with this output instead of running it."""

    node_id: str
    output: dict[str, Any] = Field(default_factory=dict)


class ApprovalDecision(_Contract):
    """Update ``decide``: a person's decision for a node waiting in ``approval``."""

    node_id: str  # the node, or node#pass in an EventDriven execution
    approved: bool
    by: str = ""
    comment: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class DefinitionState(_Contract):
    """State of a registry entity; carried across continue-as-new."""

    workflow: PluginWorkflow
    subscribers: list[str] = Field(default_factory=list)  # running long-running executions

    @field_serializer("workflow")
    def _compact_workflow(self, workflow: PluginWorkflow) -> dict[str, Any]:
        return compact(workflow)


# -- long-running modes (EventDriven, Streaming) ---------------------------------------------

WATCH_SOURCE_ACTIVITY = "watch_event_source"
RUN_STREAM_ACTIVITY = "run_stream"
EVENTS_SIGNAL = "events"
SUBMIT_EVENTS_UPDATE = "submit_events"
BUSY = "Busy"  # error type of a refused submit_events: try again shortly
SOURCE_CHECKPOINT_SIGNAL = "source_checkpoint"
STREAM_PROGRESS_SIGNAL = "stream_progress"
DEFINITION_CHANGED_SIGNAL = "definition_changed"
# Event ids an EventDriven execution remembers to drop duplicates (carried across
# continue-as-new).
DEDUP_WINDOW = 5000
READ_DEFINITION_ACTIVITY = "read_registered_definition"
SUBSCRIBE_SIGNAL = "subscribe"
UNSUBSCRIBE_SIGNAL = "unsubscribe"


class NodeCounters(_Contract):
    """Per-node counters of a long-running execution.

    EventDriven nodes count passes (``runs``, ``completed``, ``failed``, ``skipped``);
    Streaming nodes count items and batches. Both keep the last result or error.
    """

    runs: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    items_in: int = 0
    items_out: int = 0
    batches: int = 0
    errors: int = 0
    last_batch_ms: float | None = None
    last_result: dict[str, Any] | None = None
    last_error: str | None = None
    last_started_at: str | None = None
    last_completed_at: str | None = None


class IncomingEvent(_Contract):
    """One event for an EventDriven execution, from a source node or a client."""

    event_id: str
    event_type: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    source: str = ""  # the Source node it comes from (a client may name one)
    redelivered: bool = False


class Admission(_Contract):
    """Answer of the ``admission`` query: may a client send events now?"""

    accepting: bool
    queued: int = 0
    reason: str = ""


class EventsSignal(_Contract):
    """Signal ``events``: events in the order they happened."""

    events: list[IncomingEvent]


class SourceCheckpoint(_Contract):
    """Signal ``source_checkpoint``: where an event source stopped (it was cancelled)."""

    node_id: str
    checkpoint: Any = None


class WatchSourceInput(_Contract):
    """Argument of the event-source activity."""

    execution_id: str
    workflow_id: str
    node_id: str
    plugin_id: str
    config: dict[str, Any] = Field(default_factory=dict)
    checkpoint: Any = None
    max_items: int = 100
    max_wait: float = 1.0


class StreamSettings(_Contract):
    """Micro-batching and back-pressure of a stream (``global_configuration`` keys)."""

    batch_size: int = 500
    batch_max_wait: float = 0.5
    max_batches_in_flight: int = 4
    progress_interval: float = 2.0


class StreamRunInput(_Contract):
    """Argument of the stream activity: the pipeline, where to start, what was counted."""

    execution_id: str
    workflow: PluginWorkflow
    source_node: str
    checkpoint: Any = None
    counters: dict[str, NodeCounters] = Field(default_factory=dict)
    settings: StreamSettings = Field(default_factory=StreamSettings)

    @field_serializer("workflow")
    def _compact_workflow(self, workflow: PluginWorkflow) -> dict[str, Any]:
        return compact(workflow)


class StreamProgress(_Contract):
    """Signal ``stream_progress`` and the stream activity's result: counters and the
    checkpoint after the last committed batch."""

    counters: dict[str, NodeCounters] = Field(default_factory=dict)
    checkpoint: Any = None
    exhausted: bool = False
    final: bool = False


class Subscription(_Contract):
    """Signal ``subscribe`` to a registry entity: send me new versions after ``version``."""

    execution_id: str
    version: int


class DefinitionNotice(_Contract):
    """Signal ``definition_changed``: the registry holds a new version of the definition.

    Only a hint. Anyone who can reach Temporal can send a signal, and a signal names no
    sender, so the execution reads the definition from its registry entity itself
    (:data:`READ_DEFINITION_ACTIVITY`) and never adopts what a signal carries. Registries
    of earlier releases sent the whole definition: read as a notice, it gives its id and
    version and the rest is ignored.
    """

    workflow_id: str = ""
    version: int = 0


class DefinitionLookup(_Contract):
    """Argument of the activity that reads a registered definition for an execution."""

    workflow_id: str
    task_queue: str


class DefinitionReading(_Contract):
    """Result of that activity: the registered definition if it passed registration's
    validation, else why not (``refused``; empty with no definition: not registered)."""

    definition: PluginWorkflow | None = None
    version: int = 0
    refused: str = ""

    @field_serializer("definition")
    def _compact_definition(self, definition: PluginWorkflow | None) -> dict[str, Any] | None:
        return compact(definition) if definition is not None else None


class BatchRunState(_Contract):
    """What a batch execution (Sequential, Parallel, Conditional) carries across
    continue-as-new, taken while no node runs: enough to go on where it stopped
    (:meth:`engine.runtime.interpreter.Interpreter.carry`)."""

    start_time: str
    paused: bool = False
    progress: float = 0.0
    error_messages: list[str] = Field(default_factory=list)
    # Node records without results (those are in ``outputs``) unless a record's result is
    # not its output (a map body's counts).
    nodes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # The scheduler: node statuses, outputs still needed, routed errors, resolved edges.
    status: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    taken: dict[int, bool] = Field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    dropped_results: list[str] = Field(default_factory=list)  # outputs no node needs any more
    next_sequence: int = 1
    events: list[WorkflowEvent] = Field(default_factory=list)
    runs: int = 1  # Temporal runs of this execution so far
    # Completed nodes to compensate if the run fails, in order of completion: node_id, input,
    # output (engine.runtime.compensation).
    compensable: list[dict[str, Any]] = Field(default_factory=list)

    @field_serializer("events")
    def _compact_events(self, events: list[WorkflowEvent]) -> list[dict[str, Any]]:
        return [compact(event) for event in events]


class LongRunState(_Contract):
    """What a long-running execution carries across continue-as-new."""

    workflow: PluginWorkflow
    start_time: str
    next_sequence: int = 1
    events: list[WorkflowEvent] = Field(default_factory=list)
    counters: dict[str, NodeCounters] = Field(default_factory=dict)
    checkpoints: dict[str, Any] = Field(default_factory=dict)
    exhausted: list[str] = Field(default_factory=list)  # finite sources read to their end
    queue: list[IncomingEvent] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)
    passes: int = 0
    received: int = 0
    processed: int = 0
    failed: int = 0
    paused: bool = False
    runs: int = 1  # Temporal runs of this execution so far (continue-as-new count + 1)

    @field_serializer("workflow")
    def _compact_workflow(self, workflow: PluginWorkflow) -> dict[str, Any]:
        return compact(workflow)

    @field_serializer("events")
    def _compact_events(self, events: list[WorkflowEvent]) -> list[dict[str, Any]]:
        return [compact(event) for event in events]


ExecutionInput.model_rebuild()


# -- the plugin catalog -----------------------------------------------------------------------

CATALOG_WORKFLOW = "PluginCatalog"
PUBLISH_SIGNAL = "publish"
WITHDRAW_SIGNAL = "withdraw"
CATALOG_MEMO_KEY = "catalog"
CATALOG_WORKERS_MEMO_KEY = "workers"


def catalog_entity_id(task_queue: str) -> str:
    """Temporal workflow id of the plugin catalog of a task queue."""
    return f"plugin-catalog@{task_queue}"


class PluginInfo(_Contract):
    """What a worker says about one plugin id it can run."""

    plugin_id: str
    description: str = ""
    function: bool = True  # runs as a node (batch modes, stream processors and sinks)
    source: bool = False  # opens as a Source of the long-running modes
    config_schema: dict[str, Any] | None = None  # JSON Schema of the configuration
    source_config_schema: dict[str, Any] | None = None
    input_ports: list[str] = Field(default_factory=list)
    output_ports: list[str] = Field(default_factory=list)
    # Short, idempotent, no heartbeats: ``execution: auto`` runs it as a local activity.
    light: bool = False


class CatalogEntry(_Contract):
    """Signal ``publish``: one worker's plugins."""

    identity: str
    plugins: list[PluginInfo] = Field(default_factory=list)


def merge(entries: list[CatalogEntry]) -> dict[str, PluginInfo]:
    """One catalog from every worker's entry; later entries win for the same id."""
    merged: dict[str, PluginInfo] = {}
    for entry in entries:
        for info in entry.plugins:
            merged[info.plugin_id] = info
    return dict(sorted(merged.items()))


class CatalogState(_Contract):
    """State of a catalog entity: the latest entry of every worker that published."""

    entries: list[CatalogEntry] = Field(default_factory=list)


# -- admission: max_concurrent_executions (engine.temporal.admission) ---------------------------

ADMISSION_WORKFLOW = "PluginAdmission"
ADMISSION_REQUEST_SIGNAL = "request"  # a client queues a start (overflow "queue")
ADMISSION_REQUEST_UPDATE = "request_slot"  # a client (overflow "reject") or an execution asks
ADMISSION_RELEASE_SIGNAL = "release"  # an execution ended (or left the queue)
ADMISSION_GRANTED_SIGNAL = "admission_granted"  # to an execution: its slot is free
CLAIM_SLOT_ACTIVITY = "claim_execution_slot"
CHECK_EXECUTIONS_ACTIVITY = "check_admitted_executions"
_ADMISSION_MARK = "/admission@"


def admission_entity_id(workflow_id: str, task_queue: str) -> str:
    """Temporal workflow id of the admission workflow of a definition (scoped by task queue,
    like its registry entity)."""
    return f"{workflow_id}{_ADMISSION_MARK}{task_queue}"


class SlotRequest(_Contract):
    """A request for a slot of a definition's ``max_concurrent_executions``."""

    workflow_id: str
    execution_id: str
    limit: int = Field(ge=1, le=1000)
    overflow: Literal["queue", "reject"] = "queue"
    claim: bool = False  # the execution itself asks (it runs)


class SlotAnswer(_Contract):
    """``granted``, ``queued`` (``position`` in the queue) or ``rejected`` (``reason``)."""

    verdict: str
    position: int = 0
    reason: str = ""


class SlotRelease(_Contract):
    execution_id: str


class ExecutionCheck(_Contract):
    """Activity input: the executions an admission workflow counts."""

    execution_ids: list[str] = Field(default_factory=list)


class ExecutionLiveness(_Contract):
    """Activity result: ``running``, ``closed`` or ``missing`` by execution id."""

    found: dict[str, str] = Field(default_factory=dict)
