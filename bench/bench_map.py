"""A Splitter map of 10,000 items on the dev server: time, child executions, histories.

    python -m bench.bench_map [--items 10000] [--shard-size 500] [--max-concurrency 200]

``list -> split -> work -> gather``: ``work`` is a no-op async plugin, one activity per
item; the map runs as child executions of ``--shard-size`` items. Prints the wall time,
items per second, the number of child executions and the longest history among the parent
and its children (every one must stay far below Temporal's 51,200-event limit).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause

from engine import (
    AdvancedPluginOrchestrator,
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import create_worker
from plugins import PluginRegistry
from tests.helpers.builders import edge, node

TASK_QUEUE = "bench-map"
_TASK_TROUBLE = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT: "timed out",
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED: "failed",
}


async def _noop(inputs: dict[str, Any], config: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"ok": True}


def _definition(shard_size: int, max_concurrency: int) -> PluginWorkflow:
    return PluginWorkflow(
        workflow_id="bench-map",
        execution_mode=WorkflowExecutionMode.Parallel,
        nodes=[
            WorkflowNode(
                node_id="split",
                plugin_id="split",
                node_type=WorkflowNodeType.Splitter,
                configuration={
                    "items": "items",
                    "shard_size": shard_size,
                    "max_concurrency": max_concurrency,
                },
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


async def main(items: int, shard_size: int, max_concurrency: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(Path(tmp) / "server", port=free_port(), ui_port=0).start()
        try:
            client = await connect(server.address)
            orchestrator = AdvancedPluginOrchestrator(client, task_queue=TASK_QUEUE)
            registry = PluginRegistry()
            registry.register("noop", _noop)
            async with create_worker(client, task_queue=TASK_QUEUE, plugins=registry):
                await orchestrator.register_workflow(_definition(shard_size, max_concurrency))
                started = time.perf_counter()
                execution_id = await orchestrator.execute_workflow(
                    "bench-map", {"items": [{"i": i} for i in range(items)]}
                )
                context = await orchestrator.wait_for_completion(execution_id)
                elapsed = time.perf_counter() - started
            if context.status is not WorkflowExecutionStatus.Completed:
                print(f"map failed: {context.error_messages}", file=sys.stderr)
                return 1
            lengths = {}
            task_trouble: Counter[str] = Counter()
            failure_causes: Counter[str] = Counter()
            query = f"WorkflowId STARTS_WITH '{execution_id}'"
            async for execution in client.list_workflows(query):
                lengths[execution.id] = execution.history_length
                handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
                async for event in handle.fetch_history_events():
                    if event.event_type in _TASK_TROUBLE:
                        task_trouble[_TASK_TROUBLE[event.event_type]] += 1
                    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                        attributes = event.workflow_task_failed_event_attributes
                        cause = WorkflowTaskFailedCause.Name(attributes.cause)
                        failure_causes[cause.removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")] += 1
            children = len(lengths) - 1
            gathered = context.node_states["gather"]["result"]
            work = context.node_states["work"]["result"]
            print(
                f"Splitter map on the dev server, {items:,} items, shard size {shard_size}, "
                f"max concurrency {max_concurrency}"
            )
            print(f"  wall time          {elapsed:8.1f} s ({items / elapsed:,.0f} items/s)")
            print(f"  gathered           {gathered}   body runs: {work}")
            print(f"  child executions   {children}")
            print(
                f"  longest history    {max(lengths.values()):,} events "
                f"(parent: {lengths[execution_id]:,}; Temporal's limit: 51,200)"
            )
            # A workflow task that times out or fails is replayed: work lost to load.
            print(
                f"  workflow tasks     {task_trouble['timed out']} timed out, "
                f"{task_trouble['failed']} failed (all runs)"
                + (f": {dict(failure_causes)}" if failure_causes else "")
            )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--max-concurrency", type=int, default=200)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.items, args.shard_size, args.max_concurrency)))
