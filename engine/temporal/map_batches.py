"""Temporal glue of batched Splitter maps (:mod:`engine.runtime.map_batch`): a batch is one
call of the batch activity (:mod:`activities.batch`), and its answer one outcome per item.

Workflow code: deterministic, no I/O. What is scheduled (activity ids, options) is written in
history; batched maps exist only behind the ``map-batches`` patch.
"""

from __future__ import annotations

import math
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from engine.language.options import NodeOptions
    from engine.runtime.contracts import (
        BatchItemInput,
        NodeBatchInput,
        NodeBatchResult,
    )
    from engine.runtime.interpreter import NodeFailure, NodeSuccess
    from engine.runtime.map_batch import BatchCall, ItemOutcome
    from engine.runtime.node_state import call_key

# A Splitter with ``batch_size`` runs its map in batches only in runs that record this patch:
# an older run whose definition happened to carry the key replays its one-activity-per-item map.
MAP_BATCH_PATCH = "map-batches"
# What a plugin call gets to return once its attempt ended (activities.capacity).
_GRACE_SECONDS = 5.0
_LONGEST = timedelta(days=365)


def batch_request(call: BatchCall) -> NodeBatchInput:
    """The batch activity's argument for a batch."""
    return NodeBatchInput(
        execution_id=call.execution_id,
        workflow_id=call.workflow_id,
        node_id=call.node_id,
        node_name=call.node_name,
        plugin_id=call.plugin_id,
        config=call.config,
        options=call.options,
        key=call_key(call.node_id, call.pass_id),
        splitter=call.splitter,
        # Built here from checked values: constructed, not validated item by item.
        items=[
            BatchItemInput.model_construct(index=item.index, inputs=item.inputs)
            for item in call.items
        ],
        concurrency=call.concurrency,
    )


def batch_activity_id(call: BatchCall) -> str:
    """``node[splitter:first-last]`` (``node#pass[...]`` in an EventDriven pass)."""
    first, last = call.items[0].index, call.items[-1].index
    return f"{call_key(call.node_id, call.pass_id)}[{call.splitter}:{first}-{last}]"


def batch_summary(call: BatchCall) -> str:
    name = f" {call.node_name}" if call.node_name else ""
    event = f" (event #{call.pass_id})" if call.pass_id else ""
    first, last = call.items[0].index, call.items[-1].index
    return f"{call.node_id}{name}: {call.plugin_id}{event} (items {first}-{last})"


def batch_timeout(call: BatchCall) -> timedelta:
    """The batch's start-to-close timeout: every item using all its attempts and backoff,
    ``concurrency`` at a time (a lost worker is noticed by the heartbeat timeout)."""
    options: NodeOptions = call.options
    retry = options.retry
    backoff = sum(
        min(
            retry.initial_interval * retry.backoff_coefficient**attempt,
            max(retry.maximum_interval, retry.initial_interval),
        )
        for attempt in range(retry.max_attempts - 1)
    )
    per_item = retry.max_attempts * (options.timeout + _GRACE_SECONDS) + backoff
    rounds = math.ceil(len(call.items) / max(1, call.concurrency))
    return min(timedelta(seconds=per_item * rounds), _LONGEST)


def item_outcomes(call: BatchCall, result: NodeBatchResult) -> list[ItemOutcome]:
    """The batch's answer as one outcome per item, in the batch's order.

    Raises:
        RuntimeError: the answer does not hold exactly the batch's items (a worker bug).
    """
    size = len(call.items)
    errors = {error.position: error for error in result.errors}
    if (
        len(result.outputs) != size
        or len(result.attempts) != size
        or any(
            not 0 <= position < size or result.outputs[position] is not None for position in errors
        )
    ):
        first, last = call.items[0].index, call.items[-1].index
        raise RuntimeError(
            f"the batch of items {first}-{last} of node '{call.node_id}' came back with "
            f"{len(result.outputs)} outputs for {size} items"
        )
    outcomes: list[ItemOutcome] = []
    for position, (output, attempts) in enumerate(
        zip(result.outputs, result.attempts, strict=True)
    ):
        error = errors.get(position)
        if error is not None:
            outcomes.append(
                NodeFailure(
                    error.error,
                    error_type=error.error_type,
                    attempts=attempts,
                    retryable=error.retryable,
                )
            )
        elif output is None:
            raise RuntimeError(f"item {call.items[position].index} came back with no outcome")
        else:
            outcomes.append(NodeSuccess(output, attempts=attempts))
    return outcomes
