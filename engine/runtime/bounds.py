"""Bounds on what enters an execution from outside, and on what a long run carries.

Strings and values reach a running execution three ways: through the client API
(:mod:`engine.client.orchestrator`), as updates, and as signals. Anyone who can reach the Temporal
namespace can send updates and signals directly, bypassing the client, so the workflow
applies the same bounds again (:mod:`engine.temporal.workflow`):

* the client API refuses a value out of bounds up front with ``PluginError(InvalidInput)``;
* an update validator refuses it with an ``ApplicationError`` of type ``InvalidInput``, and a
  rejected update writes nothing to history;
* a signal handler cannot refuse (an error there fails the whole run), so it drops the value
  with a warning and records that it did, and the value never enters the run's state.

An EventDriven run carries its state across continue-as-new in one payload, which Temporal
caps at :data:`CARRY_LIMIT_BYTES`. Events are admitted by bytes against that limit
(:func:`queue_room`), and when the run continues as new, what may be dropped (the event log's
older entries, the counters' last results and long errors) is shrunk until the payload fits
(:func:`fit_carried`).

Every function here is pure: workflow code calls them.
"""

from __future__ import annotations

from typing import Any

import pydantic_core

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import find_json_problem
from engine.runtime.contracts import (
    DEDUP_WINDOW,
    MAX_INPUT_BYTES,
    ApprovalDecision,
    ExecutionInput,
    IncomingEvent,
    LongRunState,
    NodeCounters,
    SkipNode,
    SourceCheckpoint,
    StreamProgress,
)

# An event's type: routing names (``properties.event_type`` of Event connections).
MAX_EVENT_TYPE_CHARS = 256
# An event's id: sources build it from the Source node's id and the item's identity, which
# for the file monitor holds the file's path; only its hash is kept for deduplication.
MAX_EVENT_ID_CHARS = 1024
# An event's source names a Source node, whose id has at most this many characters
# (engine.language.validation.MAX_ID_LENGTH).
MAX_SOURCE_CHARS = 128
# A node named by an update (``node`` or ``node#pass``) and the approver (``by``).
MAX_NAME_CHARS = 256
# An approval's comment.
MAX_COMMENT_CHARS = 4096
# An event's payload and an approval's data: one update, at Temporal's payload warning size.
MAX_EVENT_BYTES = 256 * 1024
# Where an event source or a stream stopped, as one source reports it.
MAX_CHECKPOINT_BYTES = 256 * 1024
# A node's last error as a long run carries it when it must make room (bytes of JSON).
MAX_CARRIED_ERROR_BYTES = 512
# Temporal's limit on one payload (``limit.blobSize.error``): a continue-as-new input over it
# fails every workflow task of the run.
CARRY_LIMIT_BYTES = 2 * 1024 * 1024
# Kept free for the payload's envelope and encryption, the carried scalars and the JSON
# punctuation that :func:`queue_room` does not count.
CARRY_MARGIN_BYTES = 64 * 1024
# Bytes of one deduplication key a run carries in JSON: 16 hex digits, quotes and a comma.
_DEDUP_KEY_BYTES = 19


def json_bytes(value: Any) -> int:
    """Bytes of ``value`` as the data converter encodes it (compact UTF-8 JSON)."""
    return len(pydantic_core.to_json(value))


def text_problem(field: str, value: Any, limit: int) -> str | None:
    """What is wrong with ``value`` as a string of at most ``limit`` characters, or None."""
    if not isinstance(value, str):
        return f"{field} must be a string, not {type(value).__name__}"
    if len(value) > limit:
        return f"{field} is {len(value):,} characters; the limit is {limit:,}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{field} contains a lone surrogate, which is not valid Unicode"
    return None


def json_value_problem(field: str, value: Any, max_bytes: int) -> str | None:
    """What makes ``value`` not a JSON value of at most ``max_bytes``, or None."""
    if problem := find_json_problem(value, max_values=max_bytes // 2, path=field):
        return problem
    size = json_bytes(value)
    if size > max_bytes:
        return f"{field} is {size:,} bytes of JSON; the limit is {max_bytes:,}"
    return None


def event_problem(event: IncomingEvent) -> str | None:
    """What puts an event out of bounds, or None."""
    return (
        text_problem("event_id", event.event_id, MAX_EVENT_ID_CHARS)
        or text_problem("event_type", event.event_type, MAX_EVENT_TYPE_CHARS)
        or text_problem("source", event.source, MAX_SOURCE_CHARS)
        or _object_problem("payload", event.payload, MAX_EVENT_BYTES)
    )


def decision_problem(decision: ApprovalDecision) -> str | None:
    """What puts an approval decision out of bounds, or None."""
    return (
        text_problem("node_id", decision.node_id, MAX_NAME_CHARS)
        or text_problem("by", decision.by, MAX_NAME_CHARS)
        or text_problem("comment", decision.comment, MAX_COMMENT_CHARS)
        or _object_problem("data", decision.data, MAX_EVENT_BYTES)
    )


def skip_problem(request: SkipNode) -> str | None:
    """What puts a skip request out of bounds, or None."""
    return text_problem("node_id", request.node_id, MAX_NAME_CHARS) or _object_problem(
        "output", request.output, MAX_INPUT_BYTES
    )


def checkpoint_problem(report: SourceCheckpoint, sources: set[str]) -> str | None:
    """What makes a source checkpoint unacceptable: a node that is not one of ``sources``
    (the definition's Source nodes), or a checkpoint over :data:`MAX_CHECKPOINT_BYTES`."""
    if report.node_id not in sources:
        return f"node '{report.node_id[:MAX_SOURCE_CHARS]}' is not a Source node"
    return json_value_problem("checkpoint", report.checkpoint, MAX_CHECKPOINT_BYTES)


def progress_problem(report: StreamProgress, nodes: set[str]) -> str | None:
    """What makes a stream progress report unacceptable: counters of nodes the definition
    does not have, or a checkpoint over :data:`MAX_CHECKPOINT_BYTES`."""
    unknown = sorted(node_id for node_id in report.counters if node_id not in nodes)
    if unknown:
        return f"counters of unknown nodes ({len(unknown)})"
    return json_value_problem("checkpoint", report.checkpoint, MAX_CHECKPOINT_BYTES)


def _object_problem(field: str, value: Any, max_bytes: int) -> str | None:
    if not isinstance(value, dict):
        return f"{field} must be a JSON object, not {type(value).__name__}"
    return json_value_problem(field, value, max_bytes)


# -- what a long run carries across continue-as-new ---------------------------------------------


def stripped_counters(counters: NodeCounters) -> NodeCounters:
    """Counters as a run carries them when it must make room: no last result (the event log
    and the next pass show results), the last error cut to :data:`MAX_CARRIED_ERROR_BYTES`."""
    error = counters.last_error
    if error is not None:
        while json_bytes(error) > MAX_CARRIED_ERROR_BYTES:
            error = error[: len(error) * 3 // 4]
    return counters.model_copy(update={"last_result": None, "last_error": error})


_LARGEST = 2**63 - 1
_TIMESTAMP = "2000-01-01T00:00:00.000000+00:00"
# The most one node's stripped counters take, keyed by a node id of at most MAX_SOURCE_CHARS.
_COUNTERS_BYTES = (
    MAX_SOURCE_CHARS
    + 4
    + json_bytes(
        NodeCounters(
            **dict.fromkeys(("runs", "running", "completed", "failed", "skipped"), _LARGEST),
            **dict.fromkeys(("items_in", "items_out", "batches", "errors"), _LARGEST),
            last_batch_ms=-1.7976931348623157e308,
            last_error="x" * MAX_CARRIED_ERROR_BYTES,
            last_started_at=_TIMESTAMP,
            last_completed_at=_TIMESTAMP,
        )
    )
)


def queue_room(state: LongRunState, *, definition_bytes: int, input_bytes: int) -> int:
    """Bytes of events the queue of a run in ``state`` may still take, so that what the run
    must carry across continue-as-new (all but the event log, counters stripped) fits
    :data:`CARRY_LIMIT_BYTES` (less :data:`CARRY_MARGIN_BYTES`). Negative when over.

    ``definition_bytes``: the current definition, which the continue-as-new input holds twice
    (as the execution's definition and in the state); ``input_bytes``: the input data. Every
    node of the definition, and every node counted before, is reckoned at the most its
    stripped counters can take, so counters that grow later are already paid for.
    """
    nodes = set(state.counters) | {node.node_id for node in state.workflow.nodes}
    fixed = (
        2 * definition_bytes
        + input_bytes
        + DEDUP_WINDOW * _DEDUP_KEY_BYTES
        + json_bytes(state.checkpoints)
        + json_bytes(state.exhausted)
        + len(nodes) * _COUNTERS_BYTES
    )
    return CARRY_LIMIT_BYTES - CARRY_MARGIN_BYTES - fixed - json_bytes(state.queue)


def long_run_problem(params: ExecutionInput) -> str | None:
    """Why a long-running execution started with ``params`` could not carry its state
    across continue-as-new with even one event of the largest payload queued, or None."""
    definition = params.workflow
    capacity = queue_room(
        LongRunState(workflow=definition, start_time=""),
        definition_bytes=json_bytes(definition.model_dump(exclude_defaults=True)),
        input_bytes=json_bytes(params.input_data),
    )
    if capacity >= MAX_EVENT_BYTES + 4096:
        return None
    return (
        f"a {definition.execution_mode.name} execution carries its definition twice and its "
        f"input from one Temporal run to the next, in one payload of at most "
        f"{CARRY_LIMIT_BYTES:,} bytes; with this definition and input, "
        f"{max(0, capacity):,} bytes would be left for queued events, less than one event "
        f"({MAX_EVENT_BYTES:,} bytes): make the definition or the input smaller"
    )


def fit_carried(params: ExecutionInput) -> ExecutionInput:
    """``params`` (a long run's continue-as-new input) shrunk to fit
    :data:`CARRY_LIMIT_BYTES`: counters stripped, then the event log's oldest entries dropped
    (sequence numbers go on counting). Unchanged if it fits as it is.

    Raises:
        PluginError: ``InvalidState`` if it cannot fit even so (what cannot be dropped is
            too large: the definition, input, queue or checkpoints).
    """
    limit = CARRY_LIMIT_BYTES - CARRY_MARGIN_BYTES
    state = params.state
    if state is None or json_bytes(params) <= limit:
        return params
    counters = {node_id: stripped_counters(c) for node_id, c in state.counters.items()}
    floor_state = state.model_copy(update={"counters": counters, "events": []})
    floor = json_bytes(params.model_copy(update={"state": floor_state}))
    if floor > limit:
        raise PluginError(
            PluginErrorCode.InvalidState,
            f"the state this execution must carry to its next run is {floor:,} bytes (the "
            f"definition, input, {len(state.queue)} queued events, checkpoints); Temporal "
            f"carries at most {limit:,}",
        )
    room = limit - floor
    kept: list[Any] = []
    for event in reversed(state.events):
        size = json_bytes(event.model_dump(mode="json", exclude_defaults=True)) + 1
        if size > room:
            break
        room -= size
        kept.append(event)
    kept.reverse()
    return params.model_copy(update={"state": floor_state.model_copy(update={"events": kept})})
