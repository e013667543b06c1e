"""Capacity on paper: what one unit of each node kind costs Temporal and the worker, measured
from real histories on the dev server; and 1 against 2 worker processes.

    python -m bench.capacity [--quick] [--json PATH] [--skip-kinds] [--skip-workers]

Starts one tuned ``DevServer`` and the engine's worker in a SEPARATE process (``--serve``, the
same settings as the other benches: ``max_concurrent_activities`` 100, 1,000 cached
workflows), so that its CPU time (``utime + stime`` from ``/proc``, what
``resource.getrusage(RUSAGE_CHILDREN)`` would report once it exits) is the worker's alone. The
client in this process starts runs plainly (no eager start: its worker is elsewhere, as in a
cluster).

**Per kind.** Each kind runs at two sizes (small, large); every Temporal run that the run
created (the execution, its continue-as-new runs, its child executions) is read back, plus
what it added to the definition's own entity workflow. The cost per unit is the difference
between the two sizes divided by the difference in units (what a fixed start/finish costs
cancels out); the fixed cost per run is what is left at the small size.

=====================  ============================================  ========================
kind                   run                                           unit
=====================  ============================================  ========================
``activity-node``      chain of no-op activity nodes                 node
``light-node``         chain of light no-op nodes (local activities) node
``map-item``           Splitter map, one activity per item           item
``map-item-batched``   Splitter map, ``batch_size`` 100              item (batch = 100 items)
``stream-batch``       source -> double -> sink, ``batch_size`` 1000  batch of 1,000 items
``event-pass``         EventDriven ``inbox -> check -> record``       event (2 activity nodes)
=====================  ============================================  ========================

**State transitions** are not in a history; this counts, as an approximation, one per
history event that a request of its own writes (see :data:`TRANSITION_EVENTS`): the start,
each workflow task's start and completion (a completion writes the commands' events -
activity scheduled, markers, timers - in the same transaction, which are not counted again),
each activity task's start and its completion, a timer firing, a signal, a child's start and
end, a cancellation request. Activity heartbeats update the server's state too but write no
event: they are not counted.

**Workers.** 200 concurrent 3-node chains and one 100-node fan-out, with one worker process
and then two on the same task queue (alternating, ``--rounds`` times each).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench.bench_engine import (
    GRACEFUL_SHUTDOWN,
    INPUT_DATA,
    MAX_CACHED_WORKFLOWS,
    MAX_CONCURRENT_ACTIVITIES,
    chain_definition,
    environment,
    fanout_definition,
    noop,
    server_cpu,
)
from bench.bench_map_batched import _definition as map_definition
from bench.bench_streaming import event_definition, stream_definition
from bench.streaming_plugins import registry as streaming_registry
from engine import AdvancedPluginOrchestrator, PluginWorkflow, WorkflowExecutionStatus
from engine.base.logging import configure_logging
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import create_worker
from engine.runtime.contracts import IncomingEvent
from plugins import PluginRegistry

E = EventType
TRANSITION_EVENTS = frozenset(
    {
        E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        E.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        E.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
        E.EVENT_TYPE_TIMER_FIRED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
        E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
        E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
        E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
        E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
        E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
        E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
        E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    }
)


# -- the worker process ------------------------------------------------------------------------


def worker_registry() -> PluginRegistry:
    """The stream/event plugins, ``noop`` (an activity) and ``noop_light`` (light)."""
    plugins = streaming_registry()
    plugins.register("noop", noop, description="returns {'ok': True}")
    plugins.register("noop_light", noop, description="returns {'ok': True}", light=True)
    return plugins


async def serve(address: str, task_queue: str) -> None:
    """Host the engine's worker until stdin closes."""
    configure_logging("WARNING")
    client = await connect(address)
    async with create_worker(
        client,
        task_queue=task_queue,
        plugins=worker_registry(),
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        graceful_shutdown=GRACEFUL_SHUTDOWN,
    ):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


class WorkerProcess:
    """``python -m bench.capacity --serve ADDRESS QUEUE`` as a child process."""

    def __init__(self, address: str, task_queue: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.capacity", "--serve", address, task_queue],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.process.kill()
            raise RuntimeError(f"worker process did not start (said {line!r})")

    def cpu(self) -> float:
        return server_cpu(self.process.pid)

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- histories ---------------------------------------------------------------------------------


@dataclass
class Cost:
    events: float = 0.0
    bytes: float = 0.0
    transitions: float = 0.0
    activities: float = 0.0
    workflow_tasks: float = 0.0
    runs: float = 0.0
    worker_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    wall_s: float = 0.0

    def add_events(self, events: list[HistoryEvent]) -> None:
        self.events += len(events)
        self.bytes += sum(e.ByteSize() for e in events)
        self.transitions += sum(e.event_type in TRANSITION_EVENTS for e in events)
        self.activities += sum(e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in events)
        self.workflow_tasks += sum(
            e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events
        )

    def minus(self, other: Cost) -> Cost:
        return Cost(**{k: getattr(self, k) - getattr(other, k) for k in self.__dict__})

    def scaled(self, factor: float) -> Cost:
        return Cost(**{k: getattr(self, k) * factor for k in self.__dict__})


async def _runs(client: Client, task_queue: str) -> dict[tuple[str, str], bool]:
    """Every Temporal run on the queue: (workflow id, run id) -> still running."""
    found: dict[tuple[str, str], bool] = {}
    async for execution in client.list_workflows(f"TaskQueue = '{task_queue}'"):
        found[(execution.id, execution.run_id)] = execution.close_time is None
    return found


async def _events(client: Client, workflow_id: str, run_id: str) -> list[HistoryEvent]:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return list(history.events)


class Probe:
    """What one run adds on the queue: new Temporal runs, and events added to old open ones
    (the definitions' entity workflows)."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue
        self.before: dict[tuple[str, str], bool] = {}
        self.open_lengths: dict[tuple[str, str], list[HistoryEvent]] = {}

    async def start(self) -> None:
        self.before = await _runs(self.client, self.task_queue)
        self.open_lengths = {
            key: await _events(self.client, *key) for key, running in self.before.items() if running
        }

    async def finish(self, expect_new: int = 1) -> Cost:
        cost = Cost()
        # visibility is eventually consistent: wait until the new runs are listed and closed
        # and the listing stays the same for a moment
        previous: dict[tuple[str, str], bool] | None = None
        deadline = time.monotonic() + 60
        while True:
            now = await _runs(self.client, self.task_queue)
            new = {k: v for k, v in now.items() if k not in self.before}
            settled = len(new) >= expect_new and not any(new.values())
            if settled and now == previous:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"runs on {self.task_queue} did not settle: {new}")
            previous = now
            await asyncio.sleep(0.5)
        for key in new:
            cost.add_events(await _events(self.client, *key))
        cost.runs = len(new)
        for key, old in self.open_lengths.items():
            events = await _events(self.client, *key)
            cost.add_events(events[len(old) :])
        return cost


# -- the kinds ---------------------------------------------------------------------------------


def _light_chain(workflow_id: str, nodes: int) -> PluginWorkflow:
    definition = chain_definition(workflow_id, nodes)
    for node in definition.nodes:
        node.plugin_id = "noop_light"
    definition.global_configuration["execution"] = "auto"
    return definition


@dataclass
class Kind:
    name: str
    unit: str
    build: Callable[[str, int], PluginWorkflow]
    sizes: tuple[int, int]
    input: Callable[[int], dict[str, Any]]
    units: Callable[[int], float] = float
    events: bool = False  # an EventDriven run fed ``size`` events, then cancelled


def kinds(quick: bool) -> list[Kind]:
    q = quick
    return [
        Kind("activity-node", "node", chain_definition, (3, 6) if q else (5, 25), _data),
        Kind("light-node", "node", _light_chain, (3, 6) if q else (5, 25), _data),
        Kind(
            "map-item",
            "item",
            lambda wid, n: map_definition(None, 200, wid),
            (5, 10) if q else (20, 100),
            _items,
        ),
        Kind(
            "map-item-batched",
            "item",
            lambda wid, n: map_definition(100, 1000, wid),
            (100, 200) if q else (200, 1000),
            _items,
        ),
        Kind(
            "stream-batch",
            "batch of 1,000 items",
            lambda wid, n: stream_definition(wid, n, 1000),
            (2000, 4000) if q else (5000, 25000),
            lambda n: {},
            lambda n: n / 1000,
        ),
        Kind(
            "event-pass",
            "event (2 activity nodes)",
            lambda wid, n: event_definition(wid),
            (3, 6) if q else (10, 50),
            lambda n: {},
            events=True,
        ),
    ]


def _data(size: int) -> dict[str, Any]:
    return dict(INPUT_DATA)


def _items(size: int) -> dict[str, Any]:
    return {"items": [{"i": i} for i in range(size)]}


async def _feed_events(orch: AdvancedPluginOrchestrator, execution_id: str, count: int) -> None:
    """Send ``count`` events, wait until each is processed, cancel the run."""
    events = [
        IncomingEvent(event_id=f"ev-{i}", event_type="number", payload={"n": i})
        for i in range(count)
    ]
    await orch.send_events(execution_id, events)
    deadline = time.monotonic() + 300
    while True:
        data = (await orch.get_execution_status(execution_id)).execution_data
        if data["events_processed"] + data["events_failed"] >= count:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"events: {data['events_processed']}/{count} after 300 s")
        await asyncio.sleep(0.2)
    await orch.cancel_execution(execution_id)


async def measure_kind(
    client: Client,
    orch: AdvancedPluginOrchestrator,
    worker: WorkerProcess,
    server_pid: int | None,
    kind: Kind,
    size: int,
) -> Cost:
    workflow_id = f"cap-{kind.name}-{size}-{uuid.uuid4().hex[:6]}"
    await orch.register_workflow(kind.build(workflow_id, size))
    probe = Probe(client, orch.task_queue)
    await probe.start()
    w0, s0, t0 = worker.cpu(), server_cpu(server_pid), time.perf_counter()
    execution_id = await orch.execute_workflow(workflow_id, kind.input(size))
    if kind.events:
        await _feed_events(orch, execution_id, size)
    context = await orch.wait_for_completion(execution_id, timeout=600)
    wall = time.perf_counter() - t0
    # CPU from the start to the result (reading the histories back below is not charged)
    worker_cpu, srv_cpu = worker.cpu() - w0, server_cpu(server_pid) - s0
    expected = (
        WorkflowExecutionStatus.Cancelled if kind.events else WorkflowExecutionStatus.Completed
    )
    if context.status is not expected:
        raise RuntimeError(f"{kind.name} ended {context.status}: {context.error_messages}")
    cost = await probe.finish()
    cost.worker_cpu_s, cost.server_cpu_s, cost.wall_s = worker_cpu, srv_cpu, wall
    return cost


async def measure_size(
    client: Client,
    orch: AdvancedPluginOrchestrator,
    worker: WorkerProcess,
    server_pid: int | None,
    kind: Kind,
    size: int,
    repeat: int,
) -> Cost:
    """The mean of ``repeat`` runs (CPU times come in 10 ms ticks)."""
    total = Cost()
    for _ in range(repeat):
        one = await measure_kind(client, orch, worker, server_pid, kind, size)
        total = Cost(**{k: getattr(total, k) + getattr(one, k) for k in total.__dict__})
    return total.scaled(1 / repeat)


async def measure_kinds(
    server: DevServer, quick: bool, repeat: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    client = await connect(server.address)
    queue = f"capacity-{uuid.uuid4().hex[:8]}"
    orch = AdvancedPluginOrchestrator(client, task_queue=queue)
    worker = WorkerProcess(server.address, queue)
    pid = server.process.pid if server.process else None
    figures: dict[str, Any] = {}
    try:
        # one warm-up of the smallest kind: imports, caches, the catalog
        warm = kinds(quick)[0]
        await measure_kind(client, orch, worker, pid, warm, warm.sizes[0])
        for kind in kinds(quick):
            small_size, large_size = kind.sizes
            small = await measure_size(client, orch, worker, pid, kind, small_size, repeat)
            large = await measure_size(client, orch, worker, pid, kind, large_size, repeat)
            units = kind.units(large_size) - kind.units(small_size)
            per_unit = large.minus(small).scaled(1 / units)
            fixed = small.minus(per_unit.scaled(kind.units(small_size)))
            figures[kind.name] = {
                "unit": kind.unit,
                "sizes": list(kind.sizes),
                "repeat": repeat,
                "per_unit": per_unit.__dict__,
                "fixed_per_run": fixed.__dict__,
                "small": small.__dict__,
                "large": large.__dict__,
            }
            progress(
                f"  {kind.name:<18} per {kind.unit}: {per_unit.events:6.1f} events "
                f"{per_unit.bytes / 1024:7.2f} KB {per_unit.transitions:5.1f} transitions "
                f"worker {per_unit.worker_cpu_s * 1000:6.2f} ms CPU, server "
                f"{per_unit.server_cpu_s * 1000:6.2f} ms CPU"
            )
    finally:
        worker.stop()
    return figures


# -- 1 against 2 worker processes ---------------------------------------------------------------


async def measure_workers(
    server: DevServer, rounds: int, concurrent: int, fanout_nodes: int, progress: Any
) -> dict[str, Any]:
    client = await connect(server.address)
    queue = f"capacity-workers-{uuid.uuid4().hex[:8]}"
    orch = AdvancedPluginOrchestrator(client, task_queue=queue)
    pid = server.process.pid if server.process else None
    suffix = uuid.uuid4().hex[:6]
    chain_id, fan_id = f"cap-chain3-{suffix}", f"cap-fanout-{suffix}"
    await orch.register_workflow(chain_definition(chain_id, 3))
    await orch.register_workflow(fanout_definition(fan_id, fanout_nodes))

    async def one(definition: str) -> None:
        execution_id = await orch.execute_workflow(definition, INPUT_DATA)
        context = await orch.wait_for_completion(execution_id, timeout=600)
        if context.status is not WorkflowExecutionStatus.Completed:
            raise RuntimeError(f"{definition} ended {context.status}")

    scenarios: dict[str, Callable[[], Awaitable[Any]]] = {
        f"{concurrent} concurrent 3-node chains": lambda: asyncio.gather(
            *(one(chain_id) for _ in range(concurrent))
        ),
        f"{fanout_nodes}-node fan-out": lambda: one(fan_id),
    }
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        name: {"1": [], "2": []} for name in scenarios
    }
    first = WorkerProcess(server.address, queue)
    try:
        for run in scenarios.values():  # warm-up on one worker
            await run()
        for _ in range(rounds):
            for count in ("1", "2"):
                workers = [first]
                if count == "2":
                    workers.append(WorkerProcess(server.address, queue))
                try:
                    for name, run in scenarios.items():
                        w0 = [w.cpu() for w in workers]
                        s0, t0 = server_cpu(pid), time.perf_counter()
                        await run()
                        wall = time.perf_counter() - t0
                        row = {
                            "wall_s": wall,
                            "worker_cpu_s": sum(
                                w.cpu() - c for w, c in zip(workers, w0, strict=True)
                            ),
                            "server_cpu_s": server_cpu(pid) - s0,
                        }
                        results[name][count].append(row)
                        progress(
                            f"  {name:<30} {count} worker(s): {wall:7.2f} s, worker CPU "
                            f"{row['worker_cpu_s']:6.2f} s, server CPU {row['server_cpu_s']:6.2f} s"
                        )
                finally:
                    for extra in workers[1:]:
                        extra.stop()
    finally:
        first.stop()
    summary: dict[str, Any] = {}
    for name, by_count in results.items():
        summary[name] = {
            count: {
                key: statistics.median(r[key] for r in rows)
                for key in ("wall_s", "worker_cpu_s", "server_cpu_s")
            }
            | {"walls": [r["wall_s"] for r in rows]}
            for count, rows in by_count.items()
        }
        one_s, two_s = summary[name]["1"]["wall_s"], summary[name]["2"]["wall_s"]
        summary[name]["speedup"] = one_s / two_s
    return summary


# -- output ------------------------------------------------------------------------------------


def print_kinds(figures: dict[str, Any]) -> None:
    print("\nPer unit of work (difference between the two sizes; dev server, SQLite)")
    header = (
        f"{'kind':<18}{'unit':<26}{'events':>7}{'KB':>8}{'trans.':>7}{'WFTs':>6}{'acts':>6}"
        f"{'wkr ms':>8}{'srv ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, row in figures.items():
        u = row["per_unit"]
        print(
            f"{name:<18}{row['unit']:<26}{u['events']:>7.1f}{u['bytes'] / 1024:>8.2f}"
            f"{u['transitions']:>7.1f}{u['workflow_tasks']:>6.2f}{u['activities']:>6.2f}"
            f"{u['worker_cpu_s'] * 1000:>8.2f}{u['server_cpu_s'] * 1000:>8.2f}"
        )
    print("\nFixed per run (what is left at the small size)")
    print(header)
    print("-" * len(header))
    for name, row in figures.items():
        f = row["fixed_per_run"]
        print(
            f"{name:<18}{'run':<26}{f['events']:>7.1f}{f['bytes'] / 1024:>8.2f}"
            f"{f['transitions']:>7.1f}{f['workflow_tasks']:>6.2f}{f['activities']:>6.2f}"
            f"{f['worker_cpu_s'] * 1000:>8.2f}{f['server_cpu_s'] * 1000:>8.2f}"
        )
    print(
        "(events/KB: history events and their protobuf size; trans.: state transitions, see "
        "TRANSITION_EVENTS;\nWFTs: workflow tasks completed; acts: activity tasks scheduled; "
        "wkr/srv ms: CPU of the worker process / dev server)"
    )


def print_workers(summary: dict[str, Any]) -> None:
    print("\n1 against 2 worker processes on one task queue (medians)")
    for name, row in summary.items():
        print(
            f"  {name:<30} 1 worker {row['1']['wall_s']:7.2f} s (worker CPU "
            f"{row['1']['worker_cpu_s']:5.2f} s) | 2 workers {row['2']['wall_s']:7.2f} s "
            f"(worker CPU {row['2']['worker_cpu_s']:5.2f} s) | speed-up {row['speedup']:.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--serve"]:
        asyncio.run(serve(argv[1], argv[2]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.capacity", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the 1-vs-2 workers part")
    parser.add_argument("--repeat", type=int, default=3, help="runs per kind and size (mean)")
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--fanout-nodes", type=int, default=100)
    parser.add_argument("--skip-kinds", action="store_true")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, flush=True)

    configure_logging("WARNING")
    env = environment()
    progress(
        f"bench.capacity {datetime.now(UTC).isoformat(timespec='seconds')}: {env['cpus']} CPUs, "
        f"load average {env['loadavg_1_5_15']}"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    server = DevServer(data_dir, port=free_port(), ui_port=0)
    figures: dict[str, Any] = {"environment": env}
    try:
        server.start()
        if not args.skip_kinds:
            repeat = 1 if args.quick else args.repeat
            figures["kinds"] = asyncio.run(measure_kinds(server, args.quick, repeat, progress))
        if not args.skip_workers:
            concurrent = 20 if args.quick else args.concurrent
            nodes = 10 if args.quick else args.fanout_nodes
            rounds = 1 if args.quick else args.rounds
            figures["workers"] = asyncio.run(
                measure_workers(server, rounds, concurrent, nodes, progress)
            )
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    if "kinds" in figures:
        print_kinds(figures["kinds"])
    if "workers" in figures:
        print_workers(figures["workers"])
    figures["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\nload average at the end: {figures['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
