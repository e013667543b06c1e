"""The interpreter against a hand-written Temporal workflow, on one dev server, in one run.

    python -m bench.bench_engine [--runs 5] [--nodes 100] [--json PATH] [--heartbeat-baseline]
    python -m bench.bench_engine --profile engine|baseline [--runs 5] [--profile-dir DIR]

Starts one tuned dev server (``engine.hosting.devserver.DevServer``: SQLite file in a temporary
directory, free ports, no UI), one client with the engine's pydantic data converter, and two
workers in this process with identical settings: the engine's (``create_worker``) on one task
queue and the baseline's (``temporalio.worker.Worker`` with the same parameters) on another.

Scenarios (N = ``--nodes``, every node a no-op plugin / activity):

* chain: n0 -> n1 -> ... -> n(N-1), each node fed the previous node's output;
* fan-out: r -> l0 .. l(N-3) in parallel -> j, i.e. N activities in all.

Each variant gets one warm-up run per scenario, then ``--runs`` timed runs, interleaved
(engine, baseline, engine, baseline, ...). Then: validation and interpreter start-up costs
of a 10,000-node chain and a random DAG (~3 edges per node, ``random.Random(0)``).

``--heartbeat-baseline`` adds a third variant, ``baseline+hb``: the baseline whose no-op
activity heartbeats once as it starts, as the engine's node activity does.

``--profile`` runs only the given variant's scenarios under cProfile (the workflow-task
threads and the event-loop thread separately) and prints where the CPU goes.

See bench/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import temporalio
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.worker import Worker

from bench.baseline import (
    HEARTBEAT_ACTIVITY,
    BaselineChain,
    BaselineFanOut,
    noop_activity,
    noop_heartbeat_activity,
)
from engine import (
    AdvancedPluginOrchestrator,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
)
from engine.hosting.connection import connect, with_pydantic_converter
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import EngineWorker, create_worker, workflow_runner
from engine.language.validation import compile_workflow, validate_workflow
from engine.runtime.contracts import ExecutionInput, ExecutionOutcome
from engine.runtime.interpreter import Interpreter, NodeCall, NodeSuccess
from engine.runtime.outcome_pack import FORMAT as OUTCOME_FORMAT
from engine.runtime.scheduler import Scheduler
from engine.temporal.workflow import _fit
from plugins import PluginRegistry

TARGET_RATIO = 1.25
TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024
DEADLOCK_SECONDS = 2.0

# Worker settings shared by both workers (create_worker's defaults, spelled out so the
# baseline worker gets exactly the same).
MAX_CONCURRENT_ACTIVITIES = 100
MAX_CACHED_WORKFLOWS = 1000
GRACEFUL_SHUTDOWN = 5.0

INPUT_DATA = {"bench": True}


# -- the graphs ------------------------------------------------------------------------------


def _node(node_id: str) -> WorkflowNode:
    return WorkflowNode(node_id=node_id, name=node_id, plugin_id="noop")


def _edge(source: str, target: str) -> WorkflowConnection:
    return WorkflowConnection(source_node=source, target_node=target)


def chain_definition(workflow_id: str, nodes: int) -> PluginWorkflow:
    """n0 -> n1 -> ... -> n(nodes-1), Sequential mode."""
    return PluginWorkflow(
        workflow_id=workflow_id,
        name=workflow_id,
        execution_mode=WorkflowExecutionMode.Sequential,
        nodes=[_node(f"n{i}") for i in range(nodes)],
        connections=[_edge(f"n{i}", f"n{i + 1}") for i in range(nodes - 1)],
    )


def fanout_definition(workflow_id: str, nodes: int) -> PluginWorkflow:
    """r -> l0 .. l(nodes-3) -> j, Parallel mode: ``nodes`` activities in all."""
    leaves = [f"l{i}" for i in range(nodes - 2)]
    return PluginWorkflow(
        workflow_id=workflow_id,
        name=workflow_id,
        execution_mode=WorkflowExecutionMode.Parallel,
        nodes=[_node("r"), *(_node(leaf) for leaf in leaves), _node("j")],
        connections=[_edge("r", leaf) for leaf in leaves] + [_edge(leaf, "j") for leaf in leaves],
    )


def random_dag(workflow_id: str, nodes: int, edges_per_node: int = 3) -> PluginWorkflow:
    """Node i gets up to ``edges_per_node`` parents among n0..n(i-1), chosen by Random(0)."""
    rng = random.Random(0)
    connections = []
    for i in range(1, nodes):
        for j in sorted(rng.sample(range(i), min(edges_per_node, i))):
            connections.append(_edge(f"n{j}", f"n{i}"))
    return PluginWorkflow(
        workflow_id=workflow_id,
        name=workflow_id,
        execution_mode=WorkflowExecutionMode.Parallel,
        nodes=[_node(f"n{i}") for i in range(nodes)],
        connections=connections,
    )


async def noop(inputs: dict[str, Any], config: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """The no-op plugin."""
    return {"ok": True}


# -- measurement records ---------------------------------------------------------------------


@dataclass
class Sample:
    """One timed run."""

    wall: float  # client: start call -> completion returned
    start: float  # client: start call returned (engine: definition query + start)
    workflow_id: str
    history: dict[str, float] = field(default_factory=dict)
    cpu_python: float = 0.0  # CPU seconds of this process (client + both workers) in the run
    cpu_server: float = 0.0  # CPU seconds of the dev server process in the run


@dataclass
class Series:
    scenario: str
    variant: str
    nodes: int
    samples: list[Sample] = field(default_factory=list)

    def walls(self) -> list[float]:
        return [s.wall for s in self.samples]

    def median(self, key: str) -> float:
        if key in ("wall", "start", "cpu_python", "cpu_server"):
            return float(statistics.median(float(getattr(s, key)) for s in self.samples))
        return float(statistics.median(s.history[key] for s in self.samples))

    def summary(self) -> dict[str, Any]:
        walls = self.walls()
        keys = sorted(self.samples[0].history) if self.samples else []
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            "nodes": self.nodes,
            "runs": len(walls),
            "wall_s": walls,
            "min_s": min(walls),
            "median_s": statistics.median(walls),
            "max_s": max(walls),
            "median_ms_per_node": statistics.median(walls) / self.nodes * 1000,
            "median_start_s": self.median("start"),
            "median_cpu_python_s": self.median("cpu_python"),
            "median_cpu_server_s": self.median("cpu_server"),
            "history_medians": {key: self.median(key) for key in keys},
        }


def server_cpu(pid: int | None) -> float:
    """utime + stime of a process from /proc (0 where /proc is unavailable)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(run: Awaitable[Sample], server_pid: int | None) -> Sample:
    """Run one sample and charge it the CPU both processes spent meanwhile."""
    py0, srv0 = time.process_time(), server_cpu(server_pid)
    sample = await run
    sample.cpu_python = time.process_time() - py0
    sample.cpu_server = server_cpu(server_pid) - srv0
    return sample


def _ts(event: HistoryEvent) -> float:
    return event.event_time.ToNanoseconds() / 1e9


def analyze_history(events: list[HistoryEvent]) -> dict[str, float]:
    """Where a run's time went, from the server's timestamps.

    ``wft_worker_s``: sum over workflow tasks of started -> completed (the worker running
    workflow code plus one round trip); ``wft_queue_s``: scheduled -> started (waiting for
    the worker to poll it); ``act_queue_s`` and ``act_run_s`` likewise for activities.
    """
    at = {e.event_id: _ts(e) for e in events}
    wft_worker: list[float] = []
    wft_queue = act_queue = act_run = 0.0
    activities = 0
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            wft_worker.append(
                at[e.event_id] - at[e.workflow_task_completed_event_attributes.started_event_id]
            )
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            wft_queue += (
                at[e.event_id] - at[e.workflow_task_started_event_attributes.scheduled_event_id]
            )
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            act_queue += (
                at[e.event_id] - at[e.activity_task_started_event_attributes.scheduled_event_id]
            )
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            activities += 1
            act_run += (
                at[e.event_id] - at[e.activity_task_completed_event_attributes.started_event_id]
            )
    started = events[0].workflow_execution_started_event_attributes
    return {
        # 1.0 when the server handed the first workflow task back in the start's response
        "eager_accepted": float(bool(getattr(started, "eager_execution_accepted", False))),
        "server_s": at[events[-1].event_id] - at[events[0].event_id],
        "events": float(len(events)),
        "history_kb": sum(e.ByteSize() for e in events) / 1024,
        "start_event_kb": events[0].ByteSize() / 1024,
        "close_event_kb": events[-1].ByteSize() / 1024,
        "activities": float(activities),
        "wfts": float(len(wft_worker)),
        "wft_worker_s": sum(wft_worker),
        "wft_first_ms": wft_worker[0] * 1000 if wft_worker else 0.0,
        "wft_last_ms": wft_worker[-1] * 1000 if wft_worker else 0.0,
        "wft_max_ms": max(wft_worker, default=0.0) * 1000,
        "wft_queue_s": wft_queue,
        "act_queue_s": act_queue,
        "act_run_s": act_run,
    }


# -- the Temporal side -----------------------------------------------------------------------


@dataclass
class Bench:
    client: Client
    orchestrator: AdvancedPluginOrchestrator
    engine_queue: str
    baseline_queue: str
    nodes: int
    engine_ids: dict[str, str] = field(default_factory=dict)  # scenario -> definition id

    async def register(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        for scenario, build in (("chain", chain_definition), ("fan-out", fanout_definition)):
            definition = build(f"bench-{scenario}-{suffix}", self.nodes)
            await self.orchestrator.register_workflow(definition)
            self.engine_ids[scenario] = definition.workflow_id

    async def run_engine(self, scenario: str) -> Sample:
        t0 = time.perf_counter()
        execution_id = await self.orchestrator.execute_workflow(
            self.engine_ids[scenario], INPUT_DATA
        )
        t1 = time.perf_counter()
        context = await self.orchestrator.wait_for_completion(execution_id, timeout=600)
        t2 = time.perf_counter()
        if context.status is not WorkflowExecutionStatus.Completed:
            raise RuntimeError(
                f"engine {scenario} run ended {context.status}: {context.error_messages}"
            )
        return Sample(wall=t2 - t0, start=t1 - t0, workflow_id=execution_id)

    async def run_baseline(self, scenario: str, activity: str | None = None) -> Sample:
        workflow = BaselineChain if scenario == "chain" else BaselineFanOut
        params = {
            "workflow_id": f"baseline-{scenario}",
            "nodes": self.nodes,
            "input_data": INPUT_DATA,
            "activity": activity,
        }
        workflow_id = f"bench-baseline-{scenario}-{uuid.uuid4().hex[:12]}"
        # client.execute_workflow is exactly start_workflow + result; split to time the start.
        # Eager, as the engine's start from beside its worker (engine.hosting.local_workers).
        t0 = time.perf_counter()
        handle = await self.client.start_workflow(
            workflow.run,
            params,
            id=workflow_id,
            task_queue=self.baseline_queue,
            request_eager_start=True,
        )
        t1 = time.perf_counter()
        result = await handle.result()
        t2 = time.perf_counter()
        if not result.get("results"):
            raise RuntimeError(f"baseline {scenario} returned {result!r}")
        return Sample(wall=t2 - t0, start=t1 - t0, workflow_id=workflow_id)

    async def run_baseline_heartbeat(self, scenario: str) -> Sample:
        return await self.run_baseline(scenario, HEARTBEAT_ACTIVITY)

    async def fill_history(self, sample: Sample) -> None:
        history = await self.client.get_workflow_handle(sample.workflow_id).fetch_history()
        sample.history = analyze_history(list(history.events))


def _sample_line(sample: Sample) -> str:
    return (
        f"{sample.wall:7.3f} s  (CPU: python {sample.cpu_python:6.3f} s, "
        f"server {sample.cpu_server:6.3f} s)"
    )


def _baseline_worker(client: Client, task_queue: str) -> Worker:
    """The baseline's worker: create_worker's parameters, the baseline's workflows."""
    return Worker(
        with_pydantic_converter(client),
        task_queue=task_queue,
        workflows=[BaselineChain, BaselineFanOut],
        activities=[noop_activity, noop_heartbeat_activity],
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_concurrent_workflow_tasks=None,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN),
        workflow_runner=workflow_runner(),
    )


def _engine_worker(client: Client, task_queue: str) -> EngineWorker:
    registry = PluginRegistry()
    registry.register("noop", noop, description="returns {'ok': True}")
    return create_worker(
        client,
        task_queue=task_queue,
        plugins=registry,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        graceful_shutdown=GRACEFUL_SHUTDOWN,
    )


async def run_temporal(
    server: DevServer,
    runs: int,
    nodes: int,
    only: str | None,
    progress: Callable[[str], None],
    heartbeat_baseline: bool = False,
) -> list[Series]:
    address = server.address
    pid = server.process.pid if server.process else None
    client = await connect(address)
    suffix = uuid.uuid4().hex[:8]
    bench = Bench(
        client=client,
        orchestrator=AdvancedPluginOrchestrator(client, task_queue=f"bench-engine-{suffix}"),
        engine_queue=f"bench-engine-{suffix}",
        baseline_queue=f"bench-baseline-{suffix}",
        nodes=nodes,
    )
    variants: list[tuple[str, Callable[[str], Awaitable[Sample]]]] = [
        ("engine", bench.run_engine),
        ("baseline", bench.run_baseline),
    ]
    if heartbeat_baseline:
        variants.append(("baseline+hb", bench.run_baseline_heartbeat))
    if only:
        variants = [v for v in variants if v[0] == only]
    series: list[Series] = []
    async with (
        _engine_worker(client, bench.engine_queue),
        _baseline_worker(client, bench.baseline_queue),
    ):
        await bench.register()
        for scenario in ("chain", "fan-out"):
            for name, run in variants:  # warm-up, not counted
                sample = await measured(run(scenario), pid)
                progress(f"  warm-up {scenario:8} {name:8} {_sample_line(sample)}")
            current = {name: Series(scenario, name, nodes) for name, _ in variants}
            for i in range(runs):
                for name, run in variants:
                    sample = await measured(run(scenario), pid)
                    current[name].samples.append(sample)
                    progress(f"  run {i + 1}/{runs} {scenario:8} {name:8} {_sample_line(sample)}")
            series.extend(current.values())
        for one in series:  # outside the timed region
            for sample in one.samples:
                await bench.fill_history(sample)
    return series


# -- offline costs: validation, interpreter start-up, in-memory runs -------------------------


def best_of(repeat: int, function: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - t)
    return best


async def _fake_runner(call: NodeCall) -> NodeSuccess:
    return NodeSuccess(output={"ok": True})


def _interpreter(graph: Any, runner: Any = _fake_runner) -> Interpreter:
    return Interpreter(
        graph,
        execution_id="bench/run-1",
        input_data=dict(INPUT_DATA),
        runner=runner,
        clock=lambda: datetime.now(UTC),
    )


def _workflow_init(definition: PluginWorkflow) -> Interpreter:
    """What the execution workflow's ``@workflow.init`` does."""
    return _interpreter(compile_workflow(definition))


def in_memory_run(definition: PluginWorkflow) -> tuple[float, Interpreter]:
    """A whole run with a runner that returns at once: the interpreter's own CPU."""
    interpreter = _interpreter(compile_workflow(definition))
    t = time.perf_counter()
    asyncio.run(interpreter.run())
    elapsed = time.perf_counter() - t
    if interpreter.status is not WorkflowExecutionStatus.Completed:
        raise RuntimeError(f"in-memory run ended {interpreter.status}")
    return elapsed, interpreter


def first_step(definition: PluginWorkflow) -> float:
    """compile + Interpreter() + the first launch of ready nodes: the first activation."""

    async def measure() -> float:
        never: asyncio.Future[NodeSuccess] = asyncio.get_running_loop().create_future()

        async def blocked(call: NodeCall) -> NodeSuccess:
            return await never

        t = time.perf_counter()
        interpreter = _interpreter(compile_workflow(definition), blocked)
        task = asyncio.create_task(interpreter.run())
        for _ in range(3):  # run() launches ready nodes; node tasks reach the runner
            await asyncio.sleep(0)
        elapsed = time.perf_counter() - t
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return elapsed

    best = float("inf")
    for _ in range(5):
        gc.collect()
        best = min(best, asyncio.run(measure()))
    return best


def offline_costs(nodes: int, bench_nodes: int, progress: Callable[[str], None]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    graphs = {
        f"chain-{nodes}": chain_definition("bench-big-chain", nodes),
        # The densest DAG that fits the definition size limit at this scale: 70% of the
        # nodes with two parents each (a 3-parent 10,000-node DAG is refused for its size).
        f"dag-{nodes * 7 // 10}": random_dag("bench-big-dag", nodes * 7 // 10, 2),
    }
    for name, definition in graphs.items():
        progress(
            f"  {name}: {len(definition.nodes)} nodes, {len(definition.connections)} connections"
        )
        payload = ExecutionInput(workflow=definition, input_data=dict(INPUT_DATA)).model_dump_json()
        as_dict = definition.model_dump(mode="json")
        graph = compile_workflow(definition)
        row: dict[str, Any] = {
            "nodes": len(definition.nodes),
            "connections": len(definition.connections),
            "input_payload_bytes": len(payload),
            "parse_s": best_of(5, partial(PluginWorkflow.model_validate, as_dict)),
            "decode_input_s": best_of(5, partial(ExecutionInput.model_validate_json, payload)),
            "validate_s": best_of(5, partial(validate_workflow, definition)),
            "compile_s": best_of(5, partial(compile_workflow, definition)),
            "scheduler_s": best_of(5, partial(Scheduler, graph)),
            "init_s": best_of(5, partial(_workflow_init, definition)),
            "first_step_s": first_step(definition),
        }
        run_s, interpreter = in_memory_run(definition)
        row["in_memory_run_s"] = run_s
        row["in_memory_us_per_node"] = run_s / len(definition.nodes) * 1e6

        def finish(it: Interpreter = interpreter) -> int:
            # In the compact form the workflow writes (engine.runtime.outcome_pack).
            outcome = _fit(
                ExecutionOutcome(
                    context=it.context(), events=it.stored_events(), format=OUTCOME_FORMAT
                )
            )
            return len(outcome.model_dump_json())

        row["finish_s"] = best_of(3, finish)
        row["outcome_payload_bytes"] = finish()
        row["first_activation_s"] = row["decode_input_s"] + row["first_step_s"]
        figures[name] = row
    for name, build in (("chain", chain_definition), ("fan-out", fanout_definition)):
        definition = build(f"bench-{name}", bench_nodes)
        best = min(in_memory_run(definition)[0] for _ in range(5))
        figures[f"in-memory {name}-{bench_nodes}"] = {
            "nodes": bench_nodes,
            "in_memory_run_s": best,
            "in_memory_us_per_node": best / bench_nodes * 1e6,
        }
    return figures


# -- profiling -------------------------------------------------------------------------------


class ThreadProfiles:
    """cProfile in every thread started while installed (the SDK's workflow-task threads)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _bootstrap(self, frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        if threading.current_thread().name.startswith(self.prefix):
            profile = cProfile.Profile(time.thread_time)
            with self._lock:
                self.profiles.append(profile)
            profile.enable()

    @contextmanager
    def installed(self) -> Iterator[None]:
        threading.setprofile(self._bootstrap)
        try:
            yield
        finally:
            threading.setprofile(None)

    def stats(self) -> pstats.Stats | None:
        if not self.profiles:
            return None
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            stats.add(profile)
        return stats


def _print_stats(title: str, stats: pstats.Stats | None, limit: int = 30) -> str:
    out = io.StringIO()
    print(f"\n=== {title} ===", file=out)
    if stats is None:
        print("(no samples)", file=out)
    else:
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(limit)
        stats.sort_stats("cumulative").print_stats(limit)
    text = out.getvalue()
    print(text)
    return text


# -- output ----------------------------------------------------------------------------------


def print_table(series: list[Series]) -> list[dict[str, Any]]:
    rows = []
    header = (
        f"{'scenario':<13}{'variant':<12}{'runs':>5}{'min s':>8}{'median s':>10}{'max s':>8}"
        f"{'ms/node':>9}{'ratio':>8}  target"
    )
    print(header)
    print("-" * len(header))
    by_key = {(s.scenario, s.variant): s for s in series}
    for s in series:
        summary = s.summary()
        baseline = by_key.get((s.scenario, "baseline"))
        ratio_text, verdict = "", ""
        if s.variant != "baseline" and baseline is not None:
            ratio = s.median("wall") / baseline.median("wall")
            summary["ratio_vs_baseline"] = ratio
            ratio_text = f"{ratio:.2f}x"
            if s.variant == "engine":
                summary["meets_target"] = ratio <= TARGET_RATIO
                verdict = f"{'MET' if ratio <= TARGET_RATIO else 'MISSED'} (<= {TARGET_RATIO}x)"
        label = f"{s.scenario}-{s.nodes}"
        print(
            f"{label:<13}{s.variant:<12}{summary['runs']:>5}{summary['min_s']:>8.3f}"
            f"{summary['median_s']:>10.3f}{summary['max_s']:>8.3f}"
            f"{summary['median_ms_per_node']:>9.1f}{ratio_text:>8}  {verdict}"
        )
        rows.append(summary)
    return rows


def print_breakdown(series: list[Series]) -> None:
    print(
        "\nWhere the time goes (medians over the timed runs; server timestamps from each run's "
        "history)"
    )
    header = (
        f"{'scenario':<13}{'variant':<12}{'py CPU':>7}{'srv CPU':>8}{'start':>7}{'server':>8}"
        f"{'client+':>8}{'WFTs':>5}{'WFT wkr':>8}{'1st ms':>7}{'max ms':>7}{'last ms':>8}"
        f"{'WFT q':>7}{'act q':>7}{'act run':>8}"
    )
    print(header)
    print("-" * len(header))
    for s in series:
        h = s.median
        print(
            f"{s.scenario + '-' + str(s.nodes):<13}{s.variant:<12}{h('cpu_python'):>7.3f}"
            f"{h('cpu_server'):>8.3f}{h('start'):>7.3f}{h('server_s'):>8.3f}"
            f"{h('wall') - h('server_s'):>8.3f}{h('wfts'):>5.0f}{h('wft_worker_s'):>8.3f}"
            f"{h('wft_first_ms'):>7.1f}{h('wft_max_ms'):>7.1f}{h('wft_last_ms'):>8.1f}"
            f"{h('wft_queue_s'):>7.3f}{h('act_queue_s'):>7.2f}{h('act_run_s'):>8.3f}"
        )
    print(
        "(seconds unless marked) py CPU / srv CPU: CPU time of this process (client + both "
        "workers) and of the\ndev server during the run; start: the client's start call (engine: "
        "definition query + start);\nserver: first to last history event; client+: wall minus "
        "server; WFT wkr: sum over workflow tasks of\nstarted -> completed (worker CPU + a round "
        "trip); 1st/max/last: single workflow tasks; WFT q, act q:\nsums of scheduled -> started; "
        "act run: sum of activity started -> completed."
    )
    header = (
        f"\n{'scenario':<13}{'variant':<12}{'events':>7}{'history KB':>11}{'start KB':>9}"
        f"{'result KB':>10}"
    )
    print(header)
    print("-" * (len(header) - 1))
    for s in series:
        h = s.median
        print(
            f"{s.scenario + '-' + str(s.nodes):<13}{s.variant:<12}{h('events'):>7.0f}"
            f"{h('history_kb'):>11.1f}{h('start_event_kb'):>9.1f}{h('close_event_kb'):>10.1f}"
        )


def _payload_note(size: int) -> str:
    return "OVER Temporal's 2 MB payload limit" if size > TEMPORAL_PAYLOAD_LIMIT else "fits"


def print_offline(figures: dict[str, Any]) -> None:
    print("\nValidation and interpreter start-up (best of 5 unless noted; no server involved)")
    for name, row in figures.items():
        if name.startswith("in-memory"):
            continue
        print(f"\n  {name}: {row['nodes']:,} nodes, {row['connections']:,} connections")
        # (label, seconds, happens inside one workflow activation)
        lines = [
            ("PluginWorkflow.model_validate(dict)", row["parse_s"], False),
            ("validate_workflow", row["validate_s"], False),
            ("compile_workflow", row["compile_s"], False),
            ("Scheduler(graph)", row["scheduler_s"], False),
            ("compile_workflow + Interpreter() (workflow __init__)", row["init_s"], True),
            ("ExecutionInput from JSON (data converter)", row["decode_input_s"], True),
            ("init + first launch of ready nodes", row["first_step_s"], True),
            ("=> first workflow activation, estimate", row["first_activation_s"], True),
            ("final activation: context + outcome + _fit + dump", row["finish_s"], True),
            ("whole run in memory, every node (best of 1)", row["in_memory_run_s"], False),
        ]
        for label, seconds, in_activation in lines:
            warn = ""
            if in_activation and seconds > DEADLOCK_SECONDS / 4:
                warn = f"  <-- {seconds / DEADLOCK_SECONDS:.0%} of the 2 s deadlock limit"
            print(f"    {label:<55}{seconds * 1000:>9.1f} ms{warn}")
        per_node = row["in_memory_us_per_node"]
        print(f"    {'interpreter CPU per node (in memory)':<55}{per_node:>9.1f} us")
        for label, key in (
            ("ExecutionInput payload", "input_payload_bytes"),
            ("ExecutionOutcome payload", "outcome_payload_bytes"),
        ):
            size = row[key]
            print(f"    {label:<55}{size / 1e6:>9.2f} MB  {_payload_note(size)}")
    for name, row in figures.items():
        if name.startswith("in-memory"):
            total_ms = row["in_memory_run_s"] * 1000
            per_node = row["in_memory_us_per_node"]
            print(
                f"\n  {name}: whole run with a fake runner (best of 5) "
                f"{total_ms:.1f} ms = {per_node:.0f} us/node"
            )


def environment() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "platform": platform.platform(),
        "loadavg_1_5_15": [round(x, 2) for x in load],
    }


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_engine", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per variant and scenario")
    parser.add_argument("--nodes", type=int, default=100, help="activities per chain / fan-out")
    parser.add_argument("--validation-nodes", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--profile",
        choices=("engine", "baseline"),
        help="run only this variant under cProfile and print where the CPU goes",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        help="with --profile: also dump the pstats files here (workflow.pstats, loop.pstats)",
    )
    parser.add_argument(
        "--heartbeat-baseline",
        action="store_true",
        help="add a third variant: the baseline whose no-op activity heartbeats once at start",
    )
    parser.add_argument("--skip-offline", action="store_true", help="skip the 10,000-node part")
    args = parser.parse_args(argv)
    if args.nodes < 3 or args.runs < 1:
        parser.error("--nodes must be >= 3 and --runs >= 1")

    def progress(line: str) -> None:
        print(line, flush=True)

    env = environment()
    print(
        f"bench_engine {env['date']}: {env['cpus']} CPUs, Python {env['python']}, "
        f"temporalio {env['temporalio']}, load average {env['loadavg_1_5_15']}"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
    server = DevServer(data_dir, port=free_port(), ui_port=0)
    figures: dict[str, Any] = {"environment": env, "nodes": args.nodes, "runs": args.runs}
    thread_profiles = ThreadProfiles("temporal_workflow_")
    main_profile = cProfile.Profile(time.thread_time)
    try:
        progress(f"starting dev server on {server.address} ({data_dir})")
        server.start()
        progress(f"  server command: {' '.join(server.command()[1:])}")
        if args.profile:
            with thread_profiles.installed():
                main_profile.enable()
                try:
                    series = asyncio.run(
                        run_temporal(server, args.runs, args.nodes, args.profile, progress)
                    )
                finally:
                    main_profile.disable()
        else:
            series = asyncio.run(
                run_temporal(server, args.runs, args.nodes, None, progress, args.heartbeat_baseline)
            )
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    print(
        f"\nEngine vs hand-written workflow, {args.nodes} no-op activities, {args.runs} runs each\n"
    )
    figures["temporal"] = print_table(series)
    print_breakdown(series)

    if args.profile:
        workflow_stats, loop_stats = thread_profiles.stats(), pstats.Stats(main_profile)
        figures["profile_workflow_threads"] = _print_stats(
            f"{args.profile}: workflow-task threads (workflow code, sandbox, converter)",
            workflow_stats,
        )
        figures["profile_event_loop"] = _print_stats(
            f"{args.profile}: event-loop thread (activities, client, worker plumbing)",
            loop_stats,
        )
        if args.profile_dir:
            args.profile_dir.mkdir(parents=True, exist_ok=True)
            if workflow_stats is not None:
                workflow_stats.dump_stats(args.profile_dir / f"{args.profile}-workflow.pstats")
            loop_stats.dump_stats(args.profile_dir / f"{args.profile}-loop.pstats")
            print(f"pstats files written to {args.profile_dir}")
    elif not args.skip_offline:
        progress(f"\nmeasuring validation and start-up of {args.validation_nodes:,}-node graphs")
        figures["offline"] = offline_costs(args.validation_nodes, args.nodes, progress)
        print_offline(figures["offline"])

    env_end = os.getloadavg()
    print(f"\nload average at the end: {[round(x, 2) for x in env_end]}")
    figures["loadavg_end"] = [round(x, 2) for x in env_end]
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
