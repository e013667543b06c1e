"""The naive design of a stream on Temporal: one activity per item.

What a developer would write without the engine's stream activity: the workflow generates
the items (the same ``{"n": i, "payload": 50 bytes}`` the engine's source yields) and, for
each, executes ONE activity that runs the processor and the sink on that item (the same
``bench_double`` and ``bench_count`` functions the engine calls, on one-item batches). It is
the yardstick :mod:`bench.bench_streaming` measures the engine's streaming mode against.

* Activity options as the engine's node activity: start-to-close 3600 s, heartbeat timeout
  30 s, the engine's default finite retry (3 attempts, 1 s, x2, 60 s), from
  :mod:`bench.baseline`.
* At most ``concurrency`` activities in flight (an ``asyncio.Semaphore`` in the workflow:
  a bounded gather), 100 by default, the worker's ``max_concurrent_activities``.
* Each activity writes about 3 history events (scheduled, started, completed), so one run
  could not hold more than ~15,000 items before Temporal's 51,200-event limit: the workflow
  continues as new every ``per_run`` items (1,000 by default, ~3,500 events per run), under
  the same workflow id; ``handle.result()`` follows the chain.

Keep this an importable module (not ``__main__``): the workflow sandbox re-imports it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from bench.baseline import HEARTBEAT, RETRY, START_TO_CLOSE
    from bench.streaming_plugins import bench_count, bench_double, item

NAIVE_ACTIVITY = "bench_naive_item"
NAIVE_WORKFLOW = "BenchNaiveStream"


@activity.defn(name=NAIVE_ACTIVITY)
async def naive_item(request: dict[str, Any]) -> dict[str, Any]:
    """Processor then sink, on one item."""
    processed = await bench_double({"source": [request["item"]]}, {}, None)
    return await bench_count({"double": processed["items"]}, {"name": request["name"]}, None)


@workflow.defn(name=NAIVE_WORKFLOW)
class NaiveStream:
    """Items ``start`` .. ``end - 1``, ``per_run`` per Temporal run, one activity each."""

    @workflow.run
    async def run(self, params: dict[str, Any]) -> dict[str, Any]:
        start, end = int(params["start"]), int(params["end"])
        stop = min(end, start + int(params["per_run"]))
        slots = asyncio.Semaphore(int(params["concurrency"]))

        async def one(n: int) -> int:
            async with slots:
                result: dict[str, Any] = await workflow.execute_activity(
                    NAIVE_ACTIVITY,
                    {"item": item(n), "name": params["name"]},
                    result_type=dict,
                    start_to_close_timeout=START_TO_CLOSE,
                    heartbeat_timeout=HEARTBEAT,
                    retry_policy=RETRY,
                )
            return int(result["written"])

        written = sum(await asyncio.gather(*(one(n) for n in range(start, stop))))
        done = int(params.get("written", 0)) + written
        if stop < end:
            workflow.continue_as_new({**params, "start": stop, "written": done})
        return {"written": done}
