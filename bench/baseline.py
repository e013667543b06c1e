"""Hand-written Temporal workflows doing the same activities as the engine's bench graphs.

This is what a developer would write without the engine: one ``@workflow.defn`` per shape,
activities called directly. It is the yardstick :mod:`bench.bench_engine` measures the
interpreter against, so it copies everything about the engine's activity calls that costs
server or worker time, and nothing else:

* the same activity options (``start_to_close`` 3600 s, ``heartbeat_timeout`` 30 s, retry
  policy with the engine's defaults: 3 attempts, 1 s initial, x2, 60 s max), activity id =
  node id, a summary, ``WAIT_CANCELLATION_COMPLETED``;
* an activity input shaped like the engine's ``NodeActivityInput`` (execution id, workflow
  id, node id and name, plugin id, ``inputs`` keyed by upstream node id, ``config``) and a
  result shaped like ``NodeActivityResult`` (``{"output": {"ok": True}, "attempt": 1}``), as
  plain dicts through the same pydantic data converter;
* the same data flow: a chain node gets ``{previous_node_id: previous_output}``; fan-out
  leaves get ``{"r": root_output}``; the join gets every leaf's output keyed by leaf id.

It deliberately does NOT copy the engine's bookkeeping (node records, event list, progress,
the final ``ExecutionOutcome``), nor the node activity's plugin lookup, background heartbeat,
structlog binding and output check: that is the overhead being measured. Passing
``"activity": HEARTBEAT_ACTIVITY`` in the parameters swaps in a no-op that heartbeats once
when it starts, as the engine's node activity does (the bench's ``baseline+hb`` variant).

Keep this an importable module (not ``__main__``): the workflow sandbox re-imports it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

BASELINE_ACTIVITY = "bench_noop"
# The same, plus one heartbeat when it starts, as the engine's node activity sends: the
# "baseline+hb" variant isolates what that heartbeat costs.
HEARTBEAT_ACTIVITY = "bench_noop_heartbeat"

# The engine's defaults (engine/language/options.py): finite retries, 1 h per attempt, 30 s
# heartbeat.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=3,
)
START_TO_CLOSE = timedelta(seconds=3600)
HEARTBEAT = timedelta(seconds=30)


@activity.defn(name=BASELINE_ACTIVITY)
async def noop_activity(request: dict[str, Any]) -> dict[str, Any]:
    """The no-op plugin without the engine around it."""
    return {"output": {"ok": True}, "attempt": activity.info().attempt}


@activity.defn(name=HEARTBEAT_ACTIVITY)
async def noop_heartbeat_activity(request: dict[str, Any]) -> dict[str, Any]:
    """The no-op plus the immediate heartbeat of ``activities.node._Heartbeats.run``."""
    activity.heartbeat()
    return {"output": {"ok": True}, "attempt": activity.info().attempt}


def _request(
    execution_id: str, workflow_id: str, node_id: str, inputs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "workflow_id": workflow_id,
        "node_id": node_id,
        "node_name": node_id,
        "plugin_id": "noop",
        "inputs": inputs,
        "config": {},
    }


async def _call(params: dict[str, Any], node_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    workflow_id = params["workflow_id"]
    result: dict[str, Any] = await workflow.execute_activity(
        params.get("activity") or BASELINE_ACTIVITY,
        _request(workflow.info().workflow_id, workflow_id, node_id, inputs),
        result_type=dict,
        activity_id=node_id,
        summary=f"{node_id} {node_id}: noop",
        start_to_close_timeout=START_TO_CLOSE,
        heartbeat_timeout=HEARTBEAT,
        retry_policy=RETRY,
        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )
    output: dict[str, Any] = result["output"]
    return output


@workflow.defn
class BaselineChain:
    """n0 -> n1 -> ... -> n(N-1), each activity fed the previous one's output."""

    @workflow.run
    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        inputs: dict[str, Any] = dict(params.get("input_data") or {})
        output: dict[str, Any] = {}
        last = ""
        for i in range(params["nodes"]):
            last = f"n{i}"
            output = await _call(params, last, inputs)
            inputs = {last: output}
        return {"results": {last: output}}


@workflow.defn
class BaselineFanOut:
    """r -> (l0 .. l(N-3) in parallel) -> j: N activities in all."""

    @workflow.run
    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        leaves = [f"l{i}" for i in range(params["nodes"] - 2)]
        root = await _call(params, "r", dict(params.get("input_data") or {}))
        outputs = await asyncio.gather(*(_call(params, leaf, {"r": root}) for leaf in leaves))
        joined = await _call(params, "j", dict(zip(leaves, outputs, strict=True)))
        return {"results": {"j": joined}}


# -- light nodes (bench.bench_light): the same chain with local activities --------------------

# What the engine gives a light node (engine.language.options, engine.temporal.node_runner):
# a 10 s attempt, the default retry policy, a 2 s local retry threshold.
LOCAL_START_TO_CLOSE = timedelta(seconds=10)
LOCAL_RETRY_THRESHOLD = timedelta(seconds=2)


async def _call_local(
    params: dict[str, Any], node_id: str, inputs: dict[str, Any]
) -> dict[str, Any]:
    workflow_id = params["workflow_id"]
    result: dict[str, Any] = await workflow.execute_local_activity(
        BASELINE_ACTIVITY,
        _request(workflow.info().workflow_id, workflow_id, node_id, inputs),
        result_type=dict,
        activity_id=node_id,
        summary=f"{node_id} {node_id}: noop (local)",
        start_to_close_timeout=LOCAL_START_TO_CLOSE,
        retry_policy=RETRY,
        local_retry_threshold=LOCAL_RETRY_THRESHOLD,
        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )
    output: dict[str, Any] = result["output"]
    return output


@workflow.defn
class BaselineLocalChain:
    """n0 -> ... -> n(N-1) as local activities: what a developer writes for short steps."""

    @workflow.run
    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        inputs: dict[str, Any] = dict(params.get("input_data") or {})
        output: dict[str, Any] = {}
        last = ""
        for i in range(params["nodes"]):
            last = f"n{i}"
            output = await _call_local(params, last, inputs)
            inputs = {last: output}
        return {"results": {last: output}}
