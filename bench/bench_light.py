"""Light nodes against hand-written Temporal workflows, on one dev server, in one run.

    python -m bench.bench_light [--runs 5] [--nodes 100] [--latency-runs 30] [--json [PATH]]
    python -m bench.bench_light --long-chain 2000

Starts one tuned dev server (``engine.hosting.devserver.DevServer``, plus
``system.enableEagerWorkflowStart=true`` for the eager variants), one client, and two workers
in this process with the same settings as :mod:`bench.bench_engine`'s: the engine's, whose
no-op plugin is declared light, and the baseline's (:mod:`bench.baseline`).

Scenarios:

* ``light-chain-100``: an N-node Sequential chain (``--nodes``, default 100) of light nodes
  (``execution: auto``) against the hand-written chain of one activity per node
  (``BaselineChain``, the yardstick of ``bench_engine``'s chain) and against the hand-written
  chain of local activities (``BaselineLocalChain``, same options as the engine's local
  nodes). One warm-up run each, then ``--runs`` timed runs, interleaved.
* ``light-latency-3``: start-to-result of a 3-node light chain, p50 and p95 over
  ``--latency-runs`` runs, engine and hand-written 3-local-activity chain, each started
  plainly and with ``request_eager_start=True`` (the worker shares the starting client).
  The engine's eager variant is ``execute_workflow`` as is (it starts eagerly when a worker
  of this process serves the queue); its plain variant is an orchestrator that does not ask.

Every other comparison starts both sides eagerly (the engine does so on its own here; the
hand-written workflows pass ``request_eager_start=True``).
* ``--long-chain N`` runs one N-node light chain instead and prints how its workflow tasks
  went (the figures behind ``engine.temporal.node_runner.LOCAL_NODES_PER_TASK``).

``--json`` prints (or writes to PATH) one object with one stable key per scenario, each
holding ``engine_median_s``, ``baseline_median_s`` and ``ratio`` (for the chain the
baseline is the activity chain, and ``local_baseline_median_s`` / ``local_ratio`` compare
with the local one; for latency the medians are p50s, with p95s beside them).
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

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from bench.baseline import (
    BaselineChain,
    BaselineFanOut,
    BaselineLocalChain,
    noop_activity,
    noop_heartbeat_activity,
)
from bench.bench_engine import (
    GRACEFUL_SHUTDOWN,
    INPUT_DATA,
    MAX_CACHED_WORKFLOWS,
    MAX_CONCURRENT_ACTIVITIES,
    analyze_history,
    chain_definition,
    environment,
    noop,
)
from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting.connection import connect, with_pydantic_converter
from engine.hosting.devserver import TUNING, DevServer, free_port
from engine.hosting.worker import EngineWorker, create_worker, workflow_runner
from plugins import PluginRegistry

EAGER_FLAG = "system.enableEagerWorkflowStart=true"
CHAIN = "light-chain-100"
LATENCY = "light-latency-3"
Run = Callable[[], Awaitable[float]]


def _light_chain(workflow_id: str, nodes: int) -> Any:
    definition = chain_definition(workflow_id, nodes)
    definition.global_configuration["execution"] = "auto"
    return definition


class PlainStartOrchestrator(AdvancedPluginOrchestrator):
    """The orchestrator without eager starts, as in a process that hosts no worker: the
    ``light-latency-3`` scenario's not-eager variant."""

    def _eager(self) -> bool:
        return False


class LightBench:
    """The runs of each variant; every run returns its start-to-result seconds."""

    def __init__(self, client: Client, engine_queue: str, baseline_queue: str) -> None:
        self.client = client
        self.orchestrator = AdvancedPluginOrchestrator(client, task_queue=engine_queue)
        self.plain = PlainStartOrchestrator(client, task_queue=engine_queue)
        self.baseline_queue = baseline_queue
        self.definitions: dict[int, str] = {}  # nodes -> registered definition id
        self.executions: list[str] = []
        self.baseline_ids: list[str] = []

    async def register(self, nodes: int) -> None:
        definition = _light_chain(f"bench-light-{nodes}-{uuid.uuid4().hex[:8]}", nodes)
        await self.orchestrator.register_workflow(definition)
        self.definitions[nodes] = definition.workflow_id

    async def engine(self, nodes: int, eager: bool = True) -> float:
        """One run through ``execute_workflow``: eager (its worker is in this process, see
        engine.hosting.local_workers), or with ``eager=False`` through an orchestrator that
        does not ask for it, as from a process without a worker."""
        orch = self.orchestrator if eager else self.plain
        workflow_id = self.definitions[nodes]
        t0 = time.perf_counter()
        execution_id = await orch.execute_workflow(workflow_id, INPUT_DATA)
        context = await orch.wait_for_completion(execution_id, timeout=600)
        elapsed = time.perf_counter() - t0
        if context.status is not WorkflowExecutionStatus.Completed:
            raise RuntimeError(f"engine run ended {context.status}: {context.error_messages}")
        self.executions.append(execution_id)
        return elapsed

    async def baseline(self, nodes: int, local: bool, eager: bool = True) -> float:
        workflow = BaselineLocalChain if local else BaselineChain
        params = {"workflow_id": "baseline-chain", "nodes": nodes, "input_data": INPUT_DATA}
        workflow_id = f"bench-baseline-{uuid.uuid4().hex[:12]}"
        self.baseline_ids.append(workflow_id)
        t0 = time.perf_counter()
        handle = await self.client.start_workflow(
            workflow.run,
            params,
            id=workflow_id,
            task_queue=self.baseline_queue,
            request_eager_start=eager,
        )
        result = await handle.result()
        elapsed = time.perf_counter() - t0
        if not result.get("results"):
            raise RuntimeError(f"baseline returned {result!r}")
        return elapsed

    async def eager_accepted(self, workflow_ids: list[str]) -> int:
        """How many of these runs the server handed to the worker with their start."""
        accepted = 0
        for workflow_id in workflow_ids:
            history = await self.client.get_workflow_handle(workflow_id).fetch_history()
            started = history.events[0].workflow_execution_started_event_attributes
            accepted += bool(getattr(started, "eager_execution_accepted", False))
        return accepted


def _engine_worker(client: Client, task_queue: str) -> EngineWorker:
    registry = PluginRegistry()
    registry.register("noop", noop, description="returns {'ok': True}", light=True)
    return create_worker(
        client,
        task_queue=task_queue,
        plugins=registry,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        graceful_shutdown=GRACEFUL_SHUTDOWN,
    )


def _baseline_worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        with_pydantic_converter(client),
        task_queue=task_queue,
        workflows=[BaselineChain, BaselineFanOut, BaselineLocalChain],
        activities=[noop_activity, noop_heartbeat_activity],
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_concurrent_workflow_tasks=None,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        workflow_runner=workflow_runner(),
    )


async def _series(
    variants: dict[str, Run], runs: int, progress: Callable[[str], None], label: str
) -> dict[str, list[float]]:
    """One warm-up run of each variant, then ``runs`` timed runs, interleaved."""
    for name, run in variants.items():
        progress(f"  warm-up {label} {name:16} {await run():8.3f} s")
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(runs):
        for name, run in variants.items():
            times[name].append(await run())
            if runs <= 10 or (i + 1) % 10 == 0:
                progress(f"  run {i + 1}/{runs} {label} {name:16} {times[name][-1]:8.3f} s")
    return times


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    # inclusive: never beyond the largest sample (the default extrapolates on few samples)
    p95 = (
        statistics.quantiles(ordered, n=20, method="inclusive")[18]
        if len(ordered) >= 2
        else ordered[0]
    )
    return {
        "min_s": ordered[0],
        "median_s": statistics.median(ordered),
        "p95_s": p95,
        "max_s": ordered[-1],
    }


async def run_scenarios(
    server: DevServer, runs: int, nodes: int, latency_runs: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    client = await connect(server.address)
    suffix = uuid.uuid4().hex[:8]
    bench = LightBench(client, f"bench-light-{suffix}", f"bench-light-baseline-{suffix}")
    figures: dict[str, Any] = {}
    async with (
        _engine_worker(client, bench.orchestrator.task_queue),
        _baseline_worker(client, bench.baseline_queue),
    ):
        await bench.register(nodes)
        await bench.register(3)
        chain = await _series(
            {
                "engine-light": lambda: bench.engine(nodes),
                "baseline-activity": lambda: bench.baseline(nodes, local=False),
                "baseline-local": lambda: bench.baseline(nodes, local=True),
            },
            runs,
            progress,
            CHAIN,
        )
        histories = {}
        for execution_id in bench.executions[-1:]:
            history = await client.get_workflow_handle(execution_id).fetch_history()
            histories = analyze_history(list(history.events))
        engine, activity, local = (
            statistics.median(chain[k])
            for k in ("engine-light", "baseline-activity", "baseline-local")
        )
        figures[CHAIN] = {
            "nodes": nodes,
            "runs": runs,
            "engine_median_s": engine,
            "baseline_median_s": activity,
            "ratio": engine / activity,
            "local_baseline_median_s": local,
            "local_ratio": engine / local,
            "spread": {name: _spread(values) for name, values in chain.items()},
            "walls": chain,
            "engine_history": histories,
        }
        bench.executions.clear()
        bench.baseline_ids.clear()
        latency = await _series(
            {
                "engine": lambda: bench.engine(3, eager=False),
                "engine-eager": lambda: bench.engine(3),
                "baseline-local": lambda: bench.baseline(3, local=True, eager=False),
                "baseline-eager": lambda: bench.baseline(3, local=True),
            },
            latency_runs,
            progress,
            LATENCY,
        )
        eager_ids = bench.executions[1::2]  # engine and engine-eager alternate
        plain_ids = bench.executions[0::2]
        baseline_eager_ids = bench.baseline_ids[1::2]
        spread = {name: _spread(values) for name, values in latency.items()}
        figures[LATENCY] = {
            "runs": latency_runs,
            "engine_median_s": spread["engine"]["median_s"],
            "baseline_median_s": spread["baseline-local"]["median_s"],
            "ratio": spread["engine"]["median_s"] / spread["baseline-local"]["median_s"],
            "engine_p50_s": spread["engine"]["median_s"],
            "engine_p95_s": spread["engine"]["p95_s"],
            "engine_eager_p50_s": spread["engine-eager"]["median_s"],
            "engine_eager_p95_s": spread["engine-eager"]["p95_s"],
            "baseline_p50_s": spread["baseline-local"]["median_s"],
            "baseline_p95_s": spread["baseline-local"]["p95_s"],
            "baseline_eager_p50_s": spread["baseline-eager"]["median_s"],
            "baseline_eager_p95_s": spread["baseline-eager"]["p95_s"],
            "engine_eager_accepted": await bench.eager_accepted(eager_ids),
            "engine_plain_eager_accepted": await bench.eager_accepted(plain_ids),
            "baseline_eager_accepted": await bench.eager_accepted(baseline_eager_ids),
            "spread": spread,
            "walls": latency,
        }
    return figures


async def run_long_chain(server: DevServer, nodes: int, progress: Callable[[str], None]) -> Any:
    """One ``nodes``-node light chain: its time and how its workflow tasks went."""
    client = await connect(server.address)
    suffix = uuid.uuid4().hex[:8]
    bench = LightBench(client, f"bench-light-{suffix}", f"bench-light-baseline-{suffix}")
    async with _engine_worker(client, bench.orchestrator.task_queue):
        await bench.register(nodes)
        wall = await bench.engine(nodes)
        history = await client.get_workflow_handle(bench.executions[-1]).fetch_history()
        events = list(history.events)
        figures = analyze_history(events)
        timers = sum(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in events)
        markers = sum(e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED for e in events)
        progress(f"  {nodes}-node light chain: {wall:.3f} s")
    return {"nodes": nodes, "wall_s": wall, "timers": timers, "markers": markers, **figures}


def _print_chain(row: dict[str, Any]) -> None:
    print(f"\n{CHAIN}: {row['nodes']} nodes, {row['runs']} runs each (min / median / max s)")
    for name, spread in row["spread"].items():
        print(
            f"  {name:18} {spread['min_s']:7.3f} {spread['median_s']:7.3f} {spread['max_s']:7.3f}"
        )
    print(
        f"  light / activity chain: {row['ratio']:.2f}x (target <= 0.35x); "
        f"light / local chain: {row['local_ratio']:.2f}x (target <= 1.2x)"
    )


def _print_latency(row: dict[str, Any]) -> None:
    print(f"\n{LATENCY}: start to result, {row['runs']} runs each (p50 / p95 / max ms)")
    for name, spread in row["spread"].items():
        print(
            f"  {name:18} {spread['median_s'] * 1000:7.1f} {spread['p95_s'] * 1000:7.1f} "
            f"{spread['max_s'] * 1000:7.1f}"
        )
    print(
        f"  eager starts accepted: engine-eager {row['engine_eager_accepted']}/{row['runs'] + 1}, "
        f"baseline-eager {row['baseline_eager_accepted']}/{row['runs'] + 1}, "
        f"engine (plain) {row['engine_plain_eager_accepted']}/{row['runs'] + 1}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_light", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each chain variant")
    parser.add_argument("--nodes", type=int, default=100, help="nodes of the light chain")
    parser.add_argument("--latency-runs", type=int, default=30, help="runs of each 3-node variant")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        help="print the figures as JSON (or write them to this file)",
    )
    parser.add_argument("--long-chain", type=int, help="run one chain of this many light nodes")
    args = parser.parse_args(argv)
    if args.nodes < 3 or args.runs < 1 or args.latency_runs < 2:
        parser.error("--nodes must be >= 3, --runs >= 1 and --latency-runs >= 2")
    quiet = args.json == "-"

    def progress(line: str) -> None:
        print(line, flush=True, file=sys.stderr if quiet else sys.stdout)

    env = environment()
    progress(
        f"bench_light {env['date']}: {env['cpus']} CPUs, Python {env['python']}, "
        f"temporalio {env['temporalio']}, load average {env['loadavg_1_5_15']}"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="bench-light-"))
    extra = [] if EAGER_FLAG in TUNING else ["--dynamic-config-value", EAGER_FLAG]
    server = DevServer(data_dir, port=free_port(), ui_port=0, extra_args=extra)
    figures: dict[str, Any] = {"environment": env}
    try:
        server.start()
        progress(f"  server command: {' '.join(server.command()[1:])}")
        if args.long_chain:
            figures["long-chain"] = asyncio.run(run_long_chain(server, args.long_chain, progress))
        else:
            figures.update(
                asyncio.run(
                    run_scenarios(server, args.runs, args.nodes, args.latency_runs, progress)
                )
            )
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    if not quiet:
        if CHAIN in figures:
            _print_chain(figures[CHAIN])
            _print_latency(figures[LATENCY])
        else:
            print(json.dumps(figures["long-chain"], indent=2))
    if args.json:
        text = json.dumps(figures, indent=2, default=str)
        if quiet:
            print(text)
        else:
            Path(args.json).write_text(text)
            print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
