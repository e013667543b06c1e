"""A hand-written Temporal workflow doing what a batched Splitter map does: the yardstick of
``bench.bench_map_batched``.

``BaselineBatchedMap`` cuts its items into batches of ``batch_size``, runs one activity per
batch, ``max_concurrency // batch_size`` batches at once (the engine's rule: ``max_concurrency``
counts items), and gathers each item's output in input order. The activity gets a request
shaped like the engine's batch activity's (node, config, items with their index and inputs)
and answers one outcome per item, with the engine's activity options (``bench.baseline``).
It has none of the engine's per-item bookkeeping (inputs from connections, retries per item,
output checks, counts, events): that is what is measured.

Keep this an importable module (not ``__main__``): the workflow sandbox re-imports it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity, workflow

from bench.baseline import HEARTBEAT, RETRY, START_TO_CLOSE

BASELINE_BATCH_ACTIVITY = "bench_noop_batch"


@activity.defn(name=BASELINE_BATCH_ACTIVITY)
async def noop_batch_activity(request: dict[str, Any]) -> dict[str, Any]:
    """The no-op plugin over a batch: one outcome per item."""
    attempt = activity.info().attempt
    return {
        "outcomes": [
            {"index": item["index"], "output": {"ok": True}, "attempts": attempt}
            for item in request["items"]
        ]
    }


@workflow.defn
class BaselineBatchedMap:
    """items -> batches of ``batch_size`` -> one activity each -> outputs in input order."""

    @workflow.run
    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        items: list[Any] = params["items"]
        size: int = params["batch_size"]
        slots = asyncio.Semaphore(max(1, params["max_concurrency"] // size))
        results: list[Any] = [None] * len(items)

        async def batch(offset: int) -> None:
            chunk = items[offset : offset + size]
            request = {
                "execution_id": workflow.info().workflow_id,
                "workflow_id": params["workflow_id"],
                "node_id": "work",
                "plugin_id": "noop",
                "config": {},
                "items": [
                    {"index": offset + i, "inputs": {"split": {"item": item, "index": offset + i}}}
                    for i, item in enumerate(chunk)
                ],
            }
            async with slots:
                answer: dict[str, Any] = await workflow.execute_activity(
                    BASELINE_BATCH_ACTIVITY,
                    request,
                    result_type=dict,
                    activity_id=f"work[split:{offset}-{offset + len(chunk) - 1}]",
                    summary=f"work: noop (items {offset}-{offset + len(chunk) - 1})",
                    start_to_close_timeout=START_TO_CLOSE,
                    heartbeat_timeout=HEARTBEAT,
                    retry_policy=RETRY,
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
            for outcome in answer["outcomes"]:
                results[outcome["index"]] = outcome["output"]

        await asyncio.gather(*(batch(offset) for offset in range(0, len(items), size)))
        return {"count": len(results)}
