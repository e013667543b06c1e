"""Reserved configuration keys: retries, timeouts and parallelism.

A node's ``configuration`` is merged over the workflow's ``global_configuration`` (top-level
keys; the node wins). A few keys belong to the engine, not to the plugin, and are removed from
what the plugin sees:

``retry``
    ``max_attempts`` (1-100, default 3), ``initial_interval`` (seconds, default 1),
    ``backoff_coefficient`` (>= 1, default 2), ``maximum_interval`` (seconds, default 60),
    ``non_retryable_errors`` (error type names, e.g. ``"ValueError"``). The node's ``retry``
    is merged key by key over the global one. Source nodes of EventDriven and Streaming
    executions default to 100 attempts instead; there only plugin errors count: a lost
    worker (a heartbeat or start-to-close timeout) restarts the source from its last
    checkpoint without using up an attempt.
``timeout``
    Seconds one attempt may run (default 3600).
``heartbeat_timeout``
    Seconds without a heartbeat before an attempt counts as lost, e.g. because its worker died
    (default 30). The engine heartbeats for every plugin, so plugins need not.
``execution``
    Where an attempt runs: ``activity`` (default: a Temporal activity, on any worker of the
    task queue), ``local`` (a local activity, in the worker running the execution's workflow
    task: about a quarter of an activity's cost, for short idempotent work) or ``auto``
    (``local`` for plugins the worker catalog marks light, ``activity`` for the others; the
    catalog is read when the execution starts). In a node's configuration or in
    ``global_configuration`` (the node wins). A local attempt may run at most
    :data:`MAX_LOCAL_TIMEOUT` seconds: its ``timeout`` if given (registration refuses a larger
    one for ``local``), else :data:`LOCAL_TIMEOUT`. Local nodes have no heartbeats, and their
    results are durable when the workflow task that ran them completes: a worker lost before
    that runs them again (see :mod:`engine.temporal.node_runner`). While a local node runs,
    requests to the run (cancel, pause, events) wait for its workflow task to end, for up to
    about 8 s (when the worker heartbeats the task): light means well under a second.
``optional``
    Node only: ``true`` lets the run go on when the node fails for good (see
    :mod:`engine.runtime.scheduler`).
``max_parallelism``
    Global only: nodes running at once in Parallel and Conditional mode (1-1000, default 100).
``max_in_flight``
    Global only: activities and child workflows one Temporal run has pending at once, over
    all its nodes, EventDriven passes, map items and shards (1-1000, default 1000). Temporal
    fails a run's workflow task when it goes past the cluster's limits (2,000 pending
    activities and 2,000 pending child workflows by default), so keep this below them on a
    cluster configured lower. EventDriven Source watchers count against it; the nodes share
    what remains (at least one). Read once per Temporal run (a new definition version's value
    applies from the next run); a node waiting for a slot shows as running.

Global only, for the long-running modes:

``max_concurrent_events``
    EventDriven passes running at once (1-1000, default 10); later events wait in order.
``events_per_run``
    EventDriven: events one Temporal run takes before it continues as new (100-9000,
    default 1000; Temporal caps signals per run at 10,000).
``max_history_events``
    History length past which an execution continues as new (1000-40000, default 8000; it
    also does when Temporal suggests it, at 4,096 events or 4 MB by default). A batch run
    first lets its running nodes finish.
``batch_size``, ``batch_max_wait``
    Streaming micro-batches: at most this many items (1-10000, default 500), waiting at
    most this many seconds for them (0.01-60, default 0.5).
``max_batches_in_flight``
    Streaming back-pressure: batches the source may read ahead of the sinks (1-100,
    default 4).
``progress_interval``
    Seconds between a stream's progress reports (0.5-300, default 2).

Global only, for every mode:

``max_concurrent_executions``
    Executions of this definition that may run at once (1-1000; unset: no limit), like
    Airflow's ``max_active_runs``. Held by the definition's admission workflow
    (:mod:`engine.temporal.admission`), so it holds across clients and processes.
``concurrency_overflow``
    What a start over that limit does: ``"queue"`` (default) waits, in the order the starts
    were requested, with the status ``queued``; ``"reject"`` refuses the start with
    ``ConcurrencyLimitReached`` and nothing runs. Only with ``max_concurrent_executions``.

Defaults are finite on purpose: a node never retries forever.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

from engine.language.models import describe_validation_error

GLOBAL_ONLY_KEYS = frozenset(
    {
        "max_parallelism",
        "max_in_flight",
        "max_concurrent_events",
        "events_per_run",
        "max_history_events",
        "batch_size",
        "batch_max_wait",
        "max_batches_in_flight",
        "progress_interval",
        "max_concurrent_executions",
        "concurrency_overflow",
    }
)
RESERVED_KEYS = (
    frozenset({"retry", "timeout", "heartbeat_timeout", "optional", "execution"}) | GLOBAL_ONLY_KEYS
)

MAX_TIMEOUT_SECONDS = 30 * 24 * 3600.0
MAX_CONCURRENT_EXECUTIONS = 1000

Execution = Literal["activity", "local", "auto"]
EXECUTIONS: tuple[Execution, ...] = ("activity", "local", "auto")
#: Seconds a local attempt may run when its node gives no ``timeout``.
LOCAL_TIMEOUT = 10.0
#: The longest ``timeout`` a local attempt may have (it holds its workflow task meanwhile).
MAX_LOCAL_TIMEOUT = 60.0


class RetrySettings(BaseModel):
    """Retry policy for a node's plugin call (maps onto Temporal's RetryPolicy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(3, ge=1, le=100)
    initial_interval: float = Field(1.0, gt=0, le=86400)
    backoff_coefficient: float = Field(2.0, ge=1, le=100)
    maximum_interval: float = Field(60.0, gt=0, le=86400)
    non_retryable_errors: list[str] = Field(default_factory=list)

    def delay_after(self, attempt: int, error_type: str, retryable: bool) -> float | None:
        """Seconds to wait before the attempt after ``attempt`` (counted from 1) failed with
        ``error_type``, or None when the call has failed for good: not retryable, a type
        listed in ``non_retryable_errors``, or the attempts used up. Temporal's schedule:
        ``initial_interval * backoff_coefficient ** (attempt - 1)``, at most
        ``maximum_interval`` (never below ``initial_interval``). For the retries the engine
        runs itself: a batch's items and light nodes."""
        if not retryable or error_type in self.non_retryable_errors:
            return None
        if attempt >= self.max_attempts:
            return None
        backoff = self.initial_interval * self.backoff_coefficient ** (attempt - 1)
        return float(min(backoff, max(self.maximum_interval, self.initial_interval)))


class NodeOptions(BaseModel):
    """Everything the engine needs to call a node's plugin, besides the plugin's own config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retry: RetrySettings = Field(default_factory=RetrySettings)
    timeout: float = Field(3600.0, gt=0, le=MAX_TIMEOUT_SECONDS)
    heartbeat_timeout: float = Field(30.0, gt=0, le=MAX_TIMEOUT_SECONDS)
    execution: Execution = "activity"
    # The local attempt's timeout (see ``execution``): the node's ``timeout`` if it gave one.
    local_timeout: float = Field(LOCAL_TIMEOUT, gt=0, le=MAX_TIMEOUT_SECONDS)


_DEFAULT_NODE_OPTIONS = NodeOptions()
# The keys node_options reads, at either level: with none of them, a node's options are the
# defaults.
_NODE_OPTION_KEYS = frozenset(("timeout", "heartbeat_timeout", "execution", "retry"))


class GlobalOptions(BaseModel):
    """Workflow-wide engine settings read from ``global_configuration``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    max_parallelism: int = Field(100, ge=1, le=1000)
    max_in_flight: int = Field(1000, ge=1, le=1000)
    max_concurrent_events: int = Field(10, ge=1, le=1000)
    events_per_run: int = Field(1000, ge=100, le=9000)
    max_history_events: int = Field(8000, ge=1000, le=40000)
    batch_size: int = Field(500, ge=1, le=10000)
    batch_max_wait: float = Field(0.5, ge=0.01, le=60)
    max_batches_in_flight: int = Field(4, ge=1, le=100)
    progress_interval: float = Field(2.0, ge=0.5, le=300)
    # Strict: a count of runs is a JSON integer, not true or "3".
    max_concurrent_executions: StrictInt | None = Field(None, ge=1, le=MAX_CONCURRENT_EXECUTIONS)
    concurrency_overflow: Literal["queue", "reject"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _overflow_needs_limit(cls, data: Any) -> Any:
        overflow = data.get("concurrency_overflow") if isinstance(data, dict) else None
        if overflow is not None and data.get("max_concurrent_executions") is None:
            raise ValueError(
                "concurrency_overflow applies only with max_concurrent_executions; set both"
            )
        return data

    @property
    def overflow(self) -> Literal["queue", "reject"]:
        """What a start over ``max_concurrent_executions`` does (``queue`` unless set)."""
        return self.concurrency_overflow or "queue"


def node_options(global_config: dict[str, Any], node_config: dict[str, Any]) -> NodeOptions:
    """Resolve a node's options from both levels of configuration.

    Raises:
        ValueError: a reserved key has a bad value; the message names the key.
    """
    if _NODE_OPTION_KEYS.isdisjoint(node_config) and _NODE_OPTION_KEYS.isdisjoint(global_config):
        return _DEFAULT_NODE_OPTIONS  # most nodes: one frozen instance, validated once
    merged: dict[str, Any] = {}
    for key in ("timeout", "heartbeat_timeout", "execution"):
        if key in node_config:
            merged[key] = node_config[key]
        elif key in global_config:
            merged[key] = global_config[key]
    if merged.get("execution") not in EXECUTIONS:
        # Definitions registered before the key was reserved may hold any value there (their
        # plugin's): they run as they did. Registration refuses it (execution_problem).
        merged.pop("execution", None)
    if isinstance(merged.get("timeout"), int | float):
        merged["local_timeout"] = min(merged["timeout"], MAX_LOCAL_TIMEOUT)
    retry_global = global_config.get("retry", {})
    retry_node = node_config.get("retry", {})
    for where, value in (("global_configuration.retry", retry_global), ("retry", retry_node)):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an object, got {type(value).__name__}")
    if retry_global or retry_node:
        merged["retry"] = {**retry_global, **retry_node}
    if not merged:
        return _DEFAULT_NODE_OPTIONS
    try:
        return NodeOptions.model_validate(merged)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def execution_problem(global_config: dict[str, Any], node_config: dict[str, Any]) -> str | None:
    """What is wrong with a node's ``execution`` (registration only: workflow code runs a
    definition registered before the key was reserved as it did), or None."""
    for where, config in (
        ("execution", node_config),
        ("global_configuration.execution", global_config),
    ):
        value = config.get("execution")
        if "execution" in config and value not in EXECUTIONS:
            return (
                f"{where} must be one of {', '.join(repr(e) for e in EXECUTIONS)}, "
                f"got {str(value)[:100]!r}"
            )
        if "execution" in config:
            break  # the node's value wins over the global one
    execution = node_config.get("execution", global_config.get("execution"))
    timeout = node_config.get("timeout", global_config.get("timeout"))
    if execution == "local" and isinstance(timeout, int | float) and timeout > MAX_LOCAL_TIMEOUT:
        return (
            f"execution 'local' allows a timeout of at most {MAX_LOCAL_TIMEOUT:g}s (a local "
            f"attempt holds its workflow task), got {timeout:g}s: lower it or use 'activity'"
        )
    return None


def global_options(global_config: dict[str, Any]) -> GlobalOptions:
    """Read the workflow-wide settings.

    Raises:
        ValueError: a reserved key has a bad value; the message names the key.
    """
    try:
        return GlobalOptions.model_validate(global_config)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def plugin_config(global_config: dict[str, Any], node_config: dict[str, Any]) -> dict[str, Any]:
    """The configuration a plugin sees: node over global, without the engine's keys."""
    merged = {**global_config, **node_config}
    return {
        key: value
        for key, value in merged.items()
        if key not in RESERVED_KEYS or (key == "execution" and value not in EXECUTIONS)
    }
