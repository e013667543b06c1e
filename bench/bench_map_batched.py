"""Scenario ``map-10000-batched``: a batched Splitter map against a hand-written Temporal
workflow doing the same batching, on one dev server, in one run.

    python -m bench.bench_map_batched [--items 10000] [--batch-size 100]
        [--max-concurrency 1000] [--runs 3] [--json]

Engine: ``list -> split (batch_size) -> work -> gather`` where ``work`` is a no-op async
plugin: one batch activity per ``--batch-size`` items, ``max_concurrency // batch_size``
batches at once. Baseline: ``bench.baseline_map.BaselineBatchedMap``, the same batches and
concurrency with a no-op batch activity. Both workers run in this process with the same
parameters (``bench.bench_engine``), and both sides start eagerly (their worker is here).
Runs are interleaved after one warm-up run each. Prints min/median/max and the ratio of
medians; ``--json`` prints ``{"map-10000-batched": {"engine_median_s", "baseline_median_s",
"ratio", ...}}`` instead (the key names the scenario whatever ``--items`` is).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.baseline_map import BaselineBatchedMap, noop_batch_activity
from bench.bench_engine import (
    GRACEFUL_SHUTDOWN,
    MAX_CACHED_WORKFLOWS,
    MAX_CONCURRENT_ACTIVITIES,
)
from engine import (
    AdvancedPluginOrchestrator,
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.hosting.connection import connect, with_pydantic_converter
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import create_worker
from engine.temporal.sandbox import workflow_runner
from plugins import PluginRegistry
from tests.helpers.builders import edge, node

SCENARIO = "map-10000-batched"
ENGINE_QUEUE = "bench-map-batched"
BASELINE_QUEUE = "bench-map-batched-baseline"
TARGET_SECONDS = 8.0


async def _noop(inputs: dict[str, Any], config: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"ok": True}


def _definition(
    batch_size: int | None, max_concurrency: int, workflow_id: str = "bench-map-batched"
) -> PluginWorkflow:
    """``split -> work -> gather``; ``batch_size`` None: one activity per item (unbatched)."""
    configuration: dict[str, Any] = {"items": "items", "max_concurrency": max_concurrency}
    if batch_size is not None:
        configuration["batch_size"] = batch_size
    return PluginWorkflow(
        workflow_id=workflow_id,
        execution_mode=WorkflowExecutionMode.Parallel,
        nodes=[
            WorkflowNode(
                node_id="split",
                plugin_id="split",
                node_type=WorkflowNodeType.Splitter,
                configuration=configuration,
            ),
            node("work", "noop"),
            WorkflowNode(
                node_id="gather",
                plugin_id="aggregate",
                node_type=WorkflowNodeType.Aggregator,
                configuration={"strategy": "count"},
            ),
        ],
        connections=[edge("split", "work"), edge("work", "gather")],
    )


async def _engine_run(orchestrator: AdvancedPluginOrchestrator, items: list[Any]) -> float:
    started = time.perf_counter()
    execution_id = await orchestrator.execute_workflow("bench-map-batched", {"items": items})
    context = await orchestrator.wait_for_completion(execution_id, 600)
    elapsed = time.perf_counter() - started
    if context.status is not WorkflowExecutionStatus.Completed:
        raise RuntimeError(f"the engine's map failed: {context.error_messages}")
    if context.node_states["gather"]["result"] != {"count": len(items)}:
        raise RuntimeError(f"the engine's map gathered {context.node_states['gather']}")
    return elapsed


async def _baseline_run(
    client: Client, items: list[Any], batch_size: int, max_concurrency: int
) -> float:
    started = time.perf_counter()
    handle = await client.start_workflow(
        BaselineBatchedMap.run,
        {
            "workflow_id": "bench-map-batched",
            "items": items,
            "batch_size": batch_size,
            "max_concurrency": max_concurrency,
        },
        id=f"baseline-map-{uuid.uuid4().hex[:12]}",
        task_queue=BASELINE_QUEUE,
        request_eager_start=True,  # as the engine's start from beside its worker
    )
    result = await handle.result()
    elapsed = time.perf_counter() - started
    if result != {"count": len(items)}:
        raise RuntimeError(f"the baseline gathered {result}")
    return elapsed


async def _history(client: Client, workflow_id: str) -> tuple[int, int]:
    """Events and activities of a run."""
    events = 0
    activities = 0
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        events += 1
        activities += event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    return events, activities


async def measure(
    server: DevServer, items: int, batch_size: int, max_concurrency: int, runs: int
) -> dict[str, Any]:
    from temporalio.worker import Worker

    client = await connect(server.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=ENGINE_QUEUE)
    registry = PluginRegistry()
    registry.register("noop", _noop)
    engine_worker = create_worker(
        client,
        task_queue=ENGINE_QUEUE,
        plugins=registry,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    baseline_worker = Worker(
        with_pydantic_converter(client),
        task_queue=BASELINE_QUEUE,
        workflows=[BaselineBatchedMap],
        activities=[noop_batch_activity],
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_concurrent_workflow_tasks=None,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        workflow_runner=workflow_runner(),
    )
    data = [{"i": i} for i in range(items)]
    engine_times: list[float] = []
    baseline_times: list[float] = []
    async with engine_worker, baseline_worker:
        await orchestrator.register_workflow(_definition(batch_size, max_concurrency))
        await _engine_run(orchestrator, data)  # warm-up
        await _baseline_run(client, data, batch_size, max_concurrency)
        for run in range(runs):
            engine_times.append(await _engine_run(orchestrator, data))
            baseline_times.append(await _baseline_run(client, data, batch_size, max_concurrency))
            print(
                f"  run {run + 1}: engine {engine_times[-1]:6.2f} s, "
                f"baseline {baseline_times[-1]:6.2f} s",
                file=sys.stderr,
                flush=True,
            )
        last = [e async for e in client.list_workflows(f"TaskQueue = '{ENGINE_QUEUE}'")]
        executions = [e for e in last if e.id.startswith("bench-map-batched/run-")]
        newest = max(executions, key=lambda e: e.start_time)
        events, activities = await _history(client, newest.id)
    engine_median = statistics.median(engine_times)
    baseline_median = statistics.median(baseline_times)
    return {
        "engine_median_s": round(engine_median, 3),
        "baseline_median_s": round(baseline_median, 3),
        "ratio": round(engine_median / baseline_median, 3),
        "engine_min_s": round(min(engine_times), 3),
        "engine_max_s": round(max(engine_times), 3),
        "baseline_min_s": round(min(baseline_times), 3),
        "baseline_max_s": round(max(baseline_times), 3),
        "runs": runs,
        "engine_walls_s": engine_times,
        "baseline_walls_s": baseline_times,
        "items": items,
        "batch_size": batch_size,
        "max_concurrency": max_concurrency,
        "engine_items_per_s": round(items / engine_median),
        "engine_history_events": events,
        "engine_activities": activities,
        "target_s": TARGET_SECONDS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-concurrency", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(Path(tmp) / "server", port=free_port(), ui_port=0).start()
        try:
            figures = asyncio.run(
                measure(server, args.items, args.batch_size, args.max_concurrency, args.runs)
            )
        finally:
            server.stop()
    if args.json:
        print(json.dumps({SCENARIO: figures}, indent=2, sort_keys=True))
        return 0
    print(
        f"Batched Splitter map on the dev server, {args.items:,} items, batches of "
        f"{args.batch_size}, max concurrency {args.max_concurrency}, {args.runs} runs per side"
    )
    print(
        f"  engine    {figures['engine_min_s']:7.2f} / {figures['engine_median_s']:7.2f} / "
        f"{figures['engine_max_s']:7.2f} s (min / median / max), "
        f"{figures['engine_items_per_s']:,} items/s; target {TARGET_SECONDS:g} s"
    )
    print(
        f"  baseline  {figures['baseline_min_s']:7.2f} / {figures['baseline_median_s']:7.2f} / "
        f"{figures['baseline_max_s']:7.2f} s"
    )
    print(f"  ratio     {figures['ratio']:.2f}x (medians)")
    print(
        f"  engine history: {figures['engine_history_events']:,} events, "
        f"{figures['engine_activities']} activities"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
