"""Many small runs at once, and the replay of a long history, against a hand-written baseline.

    python -m bench.bench_concurrency [--runs 3] [--concurrent 200] [--nodes 3]
                                      [--replay-nodes 1000] [--json PATH]

One dev server and two workers in this process, set up exactly as in ``bench.bench_engine``
(the engine's ``create_worker`` on one task queue, ``temporalio.worker.Worker`` with the same
parameters and the baseline's workflows on another).

* **concurrent**: ``--concurrent`` executions of a ``--nodes`` chain of no-op nodes started at
  once (``asyncio.gather`` of the starts), timed until the last one completes; throughput is
  runs per second. The baseline starts as many ``BaselineChain`` workflows the same way.
  Rounds are interleaved (engine, baseline, engine, ...), after one warm-up round each.
* **replay**: one ``--replay-nodes`` chain runs to completion on each side; its longest
  history (the engine continues as new when Temporal suggests it) is fetched and replayed
  with ``temporalio.worker.Replayer`` (configured like the workers: same
  sandbox runner and data converter), best of ``--runs``. This is what a worker pays to
  rebuild such a run after a crash or a cache eviction.

Prints min/median/max per variant and the engine/baseline ratio of medians (target for the
throughput: within 1.25x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from bench.baseline import BaselineChain, BaselineFanOut
from bench.bench_engine import (
    INPUT_DATA,
    TARGET_RATIO,
    _baseline_worker,
    _engine_worker,
    chain_definition,
    environment,
)
from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer, free_port
from engine.temporal.registry import PluginWorkflowDefinition
from engine.temporal.sandbox import workflow_runner
from engine.temporal.workflow import PluginWorkflowExecution


class Sides:
    """The engine and the baseline on one server: start a run of each, wait for it."""

    def __init__(self, client: Client, suffix: str) -> None:
        self.client = client
        self.engine_queue = f"bench-engine-{suffix}"
        self.baseline_queue = f"bench-baseline-{suffix}"
        self.orchestrator = AdvancedPluginOrchestrator(client, task_queue=self.engine_queue)
        self.suffix = suffix

    async def engine_chain(self, nodes: int) -> Callable[[], Awaitable[str]]:
        definition = chain_definition(f"bench-chain{nodes}-{self.suffix}", nodes)
        await self.orchestrator.register_workflow(definition)

        async def run() -> str:
            execution_id = await self.orchestrator.execute_workflow(
                definition.workflow_id, INPUT_DATA
            )
            context = await self.orchestrator.wait_for_completion(execution_id, timeout=600)
            if context.status is not WorkflowExecutionStatus.Completed:
                raise RuntimeError(f"engine run ended {context.status}: {context.error_messages}")
            return execution_id

        return run

    def baseline_chain(self, nodes: int) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            workflow_id = f"bench-baseline-{uuid.uuid4().hex[:12]}"
            params = {"workflow_id": "baseline", "nodes": nodes, "input_data": INPUT_DATA}
            handle = await self.client.start_workflow(
                BaselineChain.run,
                params,
                id=workflow_id,
                task_queue=self.baseline_queue,
                # eager, as the engine's starts from beside its worker (local_workers)
                request_eager_start=True,
            )
            result = await handle.result()
            if not result.get("results"):
                raise RuntimeError(f"baseline returned {result!r}")
            return workflow_id

        return run


async def throughput(run: Callable[[], Awaitable[str]], concurrent: int) -> float:
    """Runs per second of ``concurrent`` runs started at once."""
    started = time.perf_counter()
    await asyncio.gather(*(run() for _ in range(concurrent)))
    return concurrent / (time.perf_counter() - started)


async def longest_history(client: Client, workflow_id: str) -> tuple[WorkflowHistory, int]:
    """The longest history among the execution's runs (the engine's batch runs continue as
    new when Temporal suggests it), and how many runs there were."""
    runs = [run async for run in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    histories = [
        await client.get_workflow_handle(workflow_id, run_id=run.run_id).fetch_history()
        for run in runs
    ]
    return max(histories, key=lambda history: len(history.events)), len(runs)


async def replay_seconds(
    client: Client, history: WorkflowHistory, workflows: list[type], runs: int
) -> float:
    """Best of ``runs`` replays of ``history``, as a worker would replay it."""
    replayer = Replayer(
        workflows=workflows,
        data_converter=client.data_converter,
        workflow_runner=workflow_runner(),
    )
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        await replayer.replay_workflow(history)
        best = min(best, time.perf_counter() - started)
    return best


async def concurrent_rounds(
    sides: Sides,
    runs: int,
    concurrent: int,
    nodes: int,
    progress: Callable[[str], None] = print,
) -> dict[str, list[float]]:
    """Runs/s of each side: one warm-up round each, then ``runs`` rounds, interleaved. The
    sides' workers must be running."""
    small = {
        "engine": await sides.engine_chain(nodes),
        "baseline": sides.baseline_chain(nodes),
    }
    rates: dict[str, list[float]] = {name: [] for name in small}
    for name, run in small.items():  # warm-up
        progress(f"  warm-up {name:8} {await throughput(run, concurrent):8.1f} runs/s")
    for i in range(runs):
        for name, run in small.items():
            rate = await throughput(run, concurrent)
            rates[name].append(rate)
            progress(f"  round {i + 1}/{runs} {name:8} {rate:8.1f} runs/s")
    return rates


async def measure(server: DevServer, args: argparse.Namespace) -> dict[str, Any]:
    client = await connect(server.address)
    sides = Sides(client, uuid.uuid4().hex[:8])
    figures: dict[str, Any] = {}
    async with (
        _engine_worker(client, sides.engine_queue),
        _baseline_worker(client, sides.baseline_queue),
    ):
        figures["concurrent"] = await concurrent_rounds(
            sides, args.runs, args.concurrent, args.nodes, lambda line: print(line, flush=True)
        )

        print(f"  running a {args.replay_nodes}-node chain on each side for the replay figure")
        long_engine = await (await sides.engine_chain(args.replay_nodes))()
        long_baseline = await sides.baseline_chain(args.replay_nodes)()
    engine_history, engine_runs = await longest_history(client, long_engine)
    baseline_history, _ = await longest_history(client, long_baseline)
    figures["replay"] = {
        "engine": await replay_seconds(
            client, engine_history, [PluginWorkflowExecution, PluginWorkflowDefinition], args.runs
        ),
        "baseline": await replay_seconds(
            client, baseline_history, [BaselineChain, BaselineFanOut], args.runs
        ),
        "engine_events": len(engine_history.events),
        "baseline_events": len(baseline_history.events),
        "engine_runs": engine_runs,
    }
    return figures


def report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    rates = figures["concurrent"]
    print(
        f"\n{args.concurrent} concurrent runs of a {args.nodes}-node chain, {args.runs} rounds "
        "(runs/s; higher is better)"
    )
    print(f"{'variant':<10}{'min':>9}{'median':>9}{'max':>9}{'ratio':>8}  target")
    base = statistics.median(rates["baseline"])
    for name, values in rates.items():
        median = statistics.median(values)
        ratio = base / median  # time per run, engine over baseline
        verdict = ""
        if name == "engine":
            verdict = f"{'MET' if ratio <= TARGET_RATIO else 'MISSED'} (<= {TARGET_RATIO}x)"
        print(
            f"{name:<10}{min(values):>9.1f}{median:>9.1f}{max(values):>9.1f}"
            f"{ratio if name == 'engine' else 1.0:>7.2f}x  {verdict}"
        )
    replay = figures["replay"]
    print(
        f"\nreplay of the longest history of one {args.replay_nodes}-node chain (best of "
        f"{args.runs}; the engine's run continued as new {replay['engine_runs'] - 1} times)"
    )
    for name in ("engine", "baseline"):
        print(
            f"{name:<10}{replay[name]:>8.3f} s  {replay[f'{name}_events']:>6} events  "
            f"{replay[name] / replay[f'{name}_events'] * 1e6:>6.0f} us/event"
        )
    print(f"ratio      {replay['engine'] / replay['baseline']:>7.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_concurrency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=3, help="timed rounds per variant")
    parser.add_argument("--concurrent", type=int, default=200, help="runs started at once")
    parser.add_argument("--nodes", type=int, default=3, help="nodes of each small run")
    parser.add_argument("--replay-nodes", type=int, default=1000, help="nodes of the long run")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.concurrent < 1 or args.nodes < 1 or args.replay_nodes < 1:
        parser.error("--runs, --concurrent, --nodes and --replay-nodes must be >= 1")
    env = environment()
    print(
        f"bench_concurrency {env['date']}: {env['cpus']} CPUs, Python {env['python']}, "
        f"temporalio {env['temporalio']}, load average {env['loadavg_1_5_15']}"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
    server = DevServer(data_dir, port=free_port(), ui_port=0)
    try:
        server.start()
        figures = asyncio.run(measure(server, args))
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    report(figures, args)
    if args.json:
        args.json.write_text(json.dumps({"environment": env, **figures}, indent=2))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
