"""Streaming and EventDriven throughput against the naive one-activity-per-item design.

    python -m bench.bench_streaming [--items 100000] [--naive-items 2000] [--events 10000]
                                    [--runs 3] [--batch-sizes 500,1000,2000] [--json PATH]
                                    [--event-rate R] [--only stream|events]
    python -m bench.bench_streaming --profile [--items 100000]

Starts one tuned dev server (``engine.hosting.devserver.DevServer``: SQLite file in a temporary
directory, free port, no UI), one client with the engine's pydantic data converter, and two
workers in this process: the engine's (``create_worker``, registry of
:mod:`bench.streaming_plugins`) and the naive design's (``temporalio.worker.Worker`` with
the same parameters, :mod:`bench.baseline_streaming`).

* engine b=N: a Streaming definition ``source (bench_numbers) -> double (bench_double) ->
  sink (bench_count)`` with ``batch_size`` N, ``batch_max_wait`` 0.2 s,
  ``max_batches_in_flight`` 4; ``--items`` items, timed from ``execute_workflow`` to
  ``wait_for_completion``.
* naive: one activity per item (processor + sink on that item), at most 100 in flight,
  continue-as-new every 1,000 items; ``--naive-items`` items, timed from ``start_workflow``
  to ``result()`` (which follows the continue-as-new chain).
* events: an EventDriven definition ``inbox (client-fed source) -> check -> record`` (two
  ``bench_echo`` activities per event), ``max_concurrent_events`` 50; ``--events`` events
  sent with ``send_event``, 50 at a time (at most ``--event-rate`` per second if given),
  timed until ``events_processed`` reaches them; then the execution is cancelled.

Each variant gets one warm-up run (a tenth of the items), then ``--runs`` timed runs,
interleaved. After the timed part, every Temporal run of each execution is read back (the
continue-as-new chain, from the latest run backwards) for the number of runs and the
longest history. ``--profile`` runs one engine stream (batch 1000) under cProfile instead.

See bench/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import temporalio
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.worker import Worker

from bench.baseline_streaming import NAIVE_WORKFLOW, NaiveStream, naive_item
from bench.streaming_plugins import COUNTS, registry
from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginError,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.base.logging import configure_logging
from engine.hosting.connection import connect, with_pydantic_converter
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import EngineWorker, create_worker, workflow_runner

TARGET_RATIO = 20.0
TARGET_ITEMS_PER_S = 5000.0
HISTORY_LIMIT = 10_000
TARGET_BATCH = 1000  # the engine variant the targets are judged on

# Both workers: create_worker's defaults, spelled out so the naive worker gets the same.
MAX_CONCURRENT_ACTIVITIES = 100
MAX_CACHED_WORKFLOWS = 1000
GRACEFUL_SHUTDOWN = 5.0

BATCH_MAX_WAIT = 0.2
MAX_BATCHES_IN_FLIGHT = 4
NAIVE_CONCURRENCY = 100
NAIVE_PER_RUN = 1000
EVENT_CONCURRENCY = 50  # max_concurrent_events, and send_event calls in flight
EVENT_SEND_RETRIES = 3


# -- definitions -----------------------------------------------------------------------------


def stream_definition(workflow_id: str, items: int, batch_size: int) -> PluginWorkflow:
    """source -> double -> sink; the sink counts under the definition's id."""
    return PluginWorkflow(
        workflow_id=workflow_id,
        name=workflow_id,
        execution_mode=WorkflowExecutionMode.Streaming,
        nodes=[
            WorkflowNode(
                node_id="source",
                name="source",
                plugin_id="bench_numbers",
                node_type=WorkflowNodeType.Source,
                configuration={"count": items},
            ),
            WorkflowNode(node_id="double", name="double", plugin_id="bench_double"),
            WorkflowNode(
                node_id="sink",
                name="sink",
                plugin_id="bench_count",
                node_type=WorkflowNodeType.Sink,
                configuration={"name": workflow_id},
            ),
        ],
        connections=[
            WorkflowConnection(source_node="source", target_node="double"),
            WorkflowConnection(source_node="double", target_node="sink"),
        ],
        global_configuration={
            "batch_size": batch_size,
            "batch_max_wait": BATCH_MAX_WAIT,
            "max_batches_in_flight": MAX_BATCHES_IN_FLIGHT,
        },
    )


def event_definition(workflow_id: str) -> PluginWorkflow:
    """inbox (a source that yields nothing: client-fed) -> check -> record."""
    return PluginWorkflow(
        workflow_id=workflow_id,
        name=workflow_id,
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[
            WorkflowNode(
                node_id="inbox",
                name="inbox",
                plugin_id="bench_numbers",
                node_type=WorkflowNodeType.Source,
                configuration={"count": 0},
            ),
            WorkflowNode(node_id="check", name="check", plugin_id="bench_echo"),
            WorkflowNode(node_id="record", name="record", plugin_id="bench_echo"),
        ],
        connections=[
            WorkflowConnection(
                source_node="inbox", target_node="check", connection_type=ConnectionType.Event
            ),
            WorkflowConnection(source_node="check", target_node="record"),
        ],
        global_configuration={"max_concurrent_events": EVENT_CONCURRENCY},
    )


# -- environment (as bench_engine) -----------------------------------------------------------


def server_cpu(pid: int | None) -> float:
    """utime + stime of a process from /proc (0 where /proc is unavailable)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def environment() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "platform": platform.platform(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


# -- histories -------------------------------------------------------------------------------


def _ts(event: HistoryEvent) -> float:
    return event.event_time.ToNanoseconds() / 1e9


def summarize_run(events: list[HistoryEvent]) -> dict[str, Any]:
    """One Temporal run: length, activities, signals, workflow tasks, how it closed."""
    kinds: dict[int, int] = {}
    at = {e.event_id: _ts(e) for e in events}
    activity_run = 0.0
    for e in events:
        kinds[e.event_type] = kinds.get(e.event_type, 0) + 1
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs = e.activity_task_completed_event_attributes
            activity_run += at[e.event_id] - at[attrs.started_event_id]
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            attrs_c = e.activity_task_canceled_event_attributes
            if attrs_c.started_event_id:
                activity_run += at[e.event_id] - at[attrs_c.started_event_id]
    return {
        "events": len(events),
        "activities": kinds.get(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, 0),
        "signals": kinds.get(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, 0),
        "wfts": kinds.get(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 0),
        # e.g. a continue-as-new refused because a signal came in meanwhile (UnhandledCommand)
        "wfts_failed": kinds.get(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED, 0),
        "start_event_kb": events[0].ByteSize() / 1024,
        "activity_run_s": activity_run,
        "server_s": _ts(events[-1]) - _ts(events[0]),
        "closed_by": EventType.Name(events[-1].event_type).removeprefix("EVENT_TYPE_"),
    }


async def runs_of(client: Client, workflow_id: str) -> dict[str, Any]:
    """Every Temporal run of an execution, following the continue-as-new chain backwards
    from the latest run; cross-checked against visibility (``WorkflowId = '...'``)."""
    runs: list[dict[str, Any]] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        events = list(history.events)
        runs.append(summarize_run(events))
        previous = events[0].workflow_execution_started_event_attributes
        if not previous.continued_execution_run_id:
            break
        run_id = previous.continued_execution_run_id
    runs.reverse()
    listed = 0
    async for _ in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        listed += 1
    lengths = [run["events"] for run in runs]
    return {
        "runs": len(runs),
        "visibility_runs": listed,
        "max_history": max(lengths),
        "total_history": sum(lengths),
        "per_run": runs,
    }


# -- measurement records ---------------------------------------------------------------------


@dataclass
class Sample:
    wall: float
    items: int
    workflow_id: str
    cpu_python: float = 0.0
    cpu_server: float = 0.0
    history: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.items / self.wall


@dataclass
class Series:
    variant: str
    items: int
    samples: list[Sample] = field(default_factory=list)

    def median(self, key: str) -> float:
        return float(statistics.median(float(getattr(s, key)) for s in self.samples))

    def median_rate(self) -> float:
        return self.items / self.median("wall")

    def summary(self) -> dict[str, Any]:
        walls = [s.wall for s in self.samples]
        return {
            "variant": self.variant,
            "items": self.items,
            "runs": len(walls),
            "wall_s": walls,
            "min_s": min(walls),
            "median_s": statistics.median(walls),
            "max_s": max(walls),
            "items_per_s": self.median_rate(),
            "median_cpu_python_s": self.median("cpu_python"),
            "median_cpu_server_s": self.median("cpu_server"),
            "temporal_runs": max(s.history["runs"] for s in self.samples),
            "max_history": max(s.history["max_history"] for s in self.samples),
            "total_history_median": statistics.median(
                s.history["total_history"] for s in self.samples
            ),
            "activity_run_s_median": statistics.median(
                sum(r["activity_run_s"] for r in s.history["per_run"]) for s in self.samples
            ),
            "histories": [s.history for s in self.samples],
        }


async def measured(run: Awaitable[Sample], server_pid: int | None) -> Sample:
    py0, srv0 = time.process_time(), server_cpu(server_pid)
    sample = await run
    sample.cpu_python = time.process_time() - py0
    sample.cpu_server = server_cpu(server_pid) - srv0
    return sample


# -- the Temporal side -----------------------------------------------------------------------


@dataclass
class Bench:
    client: Client
    orchestrator: AdvancedPluginOrchestrator
    naive_queue: str
    suffix: str
    definitions: dict[tuple[int, int], str] = field(default_factory=dict)  # (batch, items)

    async def register_stream(self, batch_size: int, items: int) -> None:
        workflow_id = f"bench-stream-b{batch_size}-n{items}-{self.suffix}"
        await self.orchestrator.register_workflow(stream_definition(workflow_id, items, batch_size))
        self.definitions[(batch_size, items)] = workflow_id

    async def run_engine(self, batch_size: int, items: int) -> Sample:
        definition = self.definitions[(batch_size, items)]
        before = COUNTS[definition]
        t0 = time.perf_counter()
        execution_id = await self.orchestrator.execute_workflow(definition)
        context = await self.orchestrator.wait_for_completion(execution_id, timeout=3600)
        wall = time.perf_counter() - t0
        if context.status is not WorkflowExecutionStatus.Completed:
            raise RuntimeError(f"engine stream ended {context.status}: {context.error_messages}")
        written = COUNTS[definition] - before
        sink = context.node_states["sink"]["counters"]["items_out"]
        if written != items or sink != items:
            raise RuntimeError(f"engine stream: sink got {written}, counted {sink}, not {items}")
        return Sample(wall=wall, items=items, workflow_id=execution_id)

    async def run_naive(self, items: int) -> Sample:
        name = f"naive-{uuid.uuid4().hex[:12]}"
        params = {
            "name": name,
            "start": 0,
            "end": items,
            "per_run": NAIVE_PER_RUN,
            "concurrency": NAIVE_CONCURRENCY,
        }
        workflow_id = f"bench-{name}"
        t0 = time.perf_counter()
        handle = await self.client.start_workflow(
            NAIVE_WORKFLOW,
            params,
            id=workflow_id,
            task_queue=self.naive_queue,
            request_eager_start=True,  # as the engine's start from beside its worker
        )
        result = await handle.result()
        wall = time.perf_counter() - t0
        if result.get("written") != items or COUNTS[name] != items:
            raise RuntimeError(f"naive: returned {result!r}, sink got {COUNTS[name]}, not {items}")
        return Sample(wall=wall, items=items, workflow_id=workflow_id)

    async def run_events(
        self, events: int, rate: float, progress: Callable[[str], None]
    ) -> dict[str, Any]:
        """Send ``events`` events (at most ``rate`` per second if > 0), wait until all are
        processed, cancel."""
        orch = self.orchestrator
        definition = event_definition(f"bench-events-{self.suffix}")
        await orch.register_workflow(definition)
        execution_id = await orch.execute_workflow(definition.workflow_id)
        numbers = iter(range(events))
        retries = sent = 0
        t0 = time.perf_counter()

        async def sender() -> None:
            nonlocal retries, sent
            for n in numbers:
                if rate > 0:  # paced: event n leaves no earlier than n / rate seconds in
                    await asyncio.sleep(max(0.0, t0 + n / rate - time.perf_counter()))
                for attempt in range(EVENT_SEND_RETRIES):
                    try:
                        await orch.send_event(execution_id, "number", {"n": n}, event_id=f"ev-{n}")
                        sent += 1
                        break
                    except PluginError:
                        if attempt == EVENT_SEND_RETRIES - 1:
                            raise
                        retries += 1  # same event id: the execution deduplicates
                        await asyncio.sleep(0.2)

        sent_at: list[float] = []

        async def send_all() -> None:
            await asyncio.gather(*(sender() for _ in range(EVENT_CONCURRENCY)))
            sent_at.append(time.perf_counter())

        sending = asyncio.create_task(send_all())
        last_print = t0
        deadline = t0 + max(600.0, events / 5, events / rate * 2 if rate > 0 else 0.0)
        data: dict[str, Any] = {}
        status_errors: list[str] = []
        while True:
            await asyncio.sleep(0.5)
            if sending.done() and sending.exception() is not None:
                raise RuntimeError("sending events failed") from sending.exception()
            try:
                context = await orch.get_execution_status(execution_id)
            except PluginError as exc:  # a status query can time out while the worker is busy
                status_errors.append(f"{time.perf_counter() - t0:.0f} s: {exc.code.value}")
                progress(f"  events: status query failed ({exc.code.value}), polling on")
                continue
            data = context.execution_data
            done = data["events_processed"] + data["events_failed"]
            now = time.perf_counter()
            if done >= events:
                break
            if now > deadline:
                raise RuntimeError(f"events: only {done}/{events} handled after {now - t0:.0f}s")
            if now - last_print >= 10:
                last_print = now
                progress(
                    f"  events: {now - t0:5.0f} s  sent {sent}, received "
                    f"{data['events_received']}, processed {data['events_processed']}, "
                    f"Temporal run {data.get('runs', '?')}"
                )
        wall = time.perf_counter() - t0
        await sending
        await orch.cancel_execution(execution_id)
        final = await orch.wait_for_completion(execution_id, timeout=120)
        return {
            "execution_id": execution_id,
            "events": events,
            "rate_limit": rate,
            "wall_s": wall,
            "send_s": sent_at[0] - t0,
            "events_per_s": events / wall,
            "processed": data["events_processed"],
            "failed": data["events_failed"],
            "received": data["events_received"],
            "send_retries": retries,
            "status_query_failures": status_errors,
            "final_status": final.status.value,
        }


def _naive_worker(client: Client, task_queue: str) -> Worker:
    """The naive design's worker: create_worker's parameters, its workflow and activity."""
    return Worker(
        with_pydantic_converter(client),
        task_queue=task_queue,
        workflows=[NaiveStream],
        activities=[naive_item],
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_concurrent_workflow_tasks=None,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN),
        workflow_runner=workflow_runner(),
    )


def _engine_worker(client: Client, task_queue: str) -> EngineWorker:
    return create_worker(
        client,
        task_queue=task_queue,
        plugins=registry(),
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        graceful_shutdown=GRACEFUL_SHUTDOWN,
    )


def _line(sample: Sample) -> str:
    return (
        f"{sample.wall:8.3f} s  {sample.rate:9.0f} items/s  (CPU: python "
        f"{sample.cpu_python:6.2f} s, server {sample.cpu_server:6.2f} s)"
    )


async def run_temporal(
    server: DevServer, args: argparse.Namespace, progress: Callable[[str], None]
) -> dict[str, Any]:
    pid = server.process.pid if server.process else None
    client = await connect(server.address)
    suffix = uuid.uuid4().hex[:8]
    engine_queue = f"bench-stream-engine-{suffix}"
    bench = Bench(
        client=client,
        orchestrator=AdvancedPluginOrchestrator(client, task_queue=engine_queue),
        naive_queue=f"bench-stream-naive-{suffix}",
        suffix=suffix,
    )
    warm_items = max(1, args.items // 10)
    variants: list[tuple[str, int, Callable[[bool], Awaitable[Sample]]]] = []
    for batch in args.batch_sizes:

        def engine(warm: bool, batch: int = batch) -> Awaitable[Sample]:
            return bench.run_engine(batch, warm_items if warm else args.items)

        variants.append((f"engine b={batch}", args.items, engine))

    def naive(warm: bool) -> Awaitable[Sample]:
        return bench.run_naive(max(1, args.naive_items // 10) if warm else args.naive_items)

    if args.naive_items:
        variants.append(("naive", args.naive_items, naive))

    figures: dict[str, Any] = {}
    async with _engine_worker(client, engine_queue), _naive_worker(client, bench.naive_queue):
        for batch in args.batch_sizes:
            await bench.register_stream(batch, args.items)
            await bench.register_stream(batch, warm_items)
        for name, _, run in variants:
            sample = await measured(run(True), pid)
            progress(f"  warm-up      {name:<13} {sample.items:>7} items {_line(sample)}")
        series = {name: Series(name, items) for name, items, _ in variants}
        for i in range(args.runs):
            for name, _, run in variants:
                sample = await measured(run(False), pid)
                series[name].samples.append(sample)
                progress(f"  run {i + 1}/{args.runs}      {name:<13} {_line(sample)}")
        for one in series.values():  # outside the timed region
            for sample in one.samples:
                sample.history = await runs_of(client, sample.workflow_id)
        figures["stream"] = [one.summary() for one in series.values()]
        if args.events:
            progress(f"  event run: {args.events} events, {EVENT_CONCURRENCY} at a time")
            py0, srv0 = time.process_time(), server_cpu(pid)
            events = await bench.run_events(args.events, args.event_rate, progress)
            events["cpu_python_s"] = time.process_time() - py0
            events["cpu_server_s"] = server_cpu(pid) - srv0
            events["history"] = await runs_of(client, events["execution_id"])
            figures["events"] = events
    return figures


async def run_profile(
    server: DevServer, args: argparse.Namespace, progress: Callable[[str], None]
) -> str:
    """One engine stream (batch TARGET_BATCH) under cProfile (event-loop thread, CPU time)."""
    client = await connect(server.address)
    suffix = uuid.uuid4().hex[:8]
    queue = f"bench-stream-profile-{suffix}"
    bench = Bench(
        client=client,
        orchestrator=AdvancedPluginOrchestrator(client, task_queue=queue),
        naive_queue="",
        suffix=suffix,
    )
    profile = cProfile.Profile(time.thread_time)
    async with _engine_worker(client, queue):
        await bench.register_stream(TARGET_BATCH, args.items)
        await bench.register_stream(TARGET_BATCH, max(1, args.items // 10))
        await bench.run_engine(TARGET_BATCH, max(1, args.items // 10))  # warm-up
        t0 = time.process_time()
        profile.enable()
        sample = await bench.run_engine(TARGET_BATCH, args.items)
        profile.disable()
        progress(
            f"  profiled run (under cProfile): {sample.wall:.2f} s, {sample.rate:.0f} items/s, "
            f"CPU of this process {time.process_time() - t0:.2f} s"
        )
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)
    return out.getvalue()


# -- output ----------------------------------------------------------------------------------


def print_stream_table(rows: list[dict[str, Any]]) -> None:
    naive = next((r for r in rows if r["variant"] == "naive"), None)
    header = (
        f"{'variant':<14}{'items':>8}{'runs':>5}{'min s':>8}{'median s':>9}{'max s':>8}"
        f"{'items/s':>9}{'vs naive':>9}{'us CPU/item':>12}{'T-runs':>7}{'max hist':>9}"
        f"{'total hist':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = ""
        if naive is not None and r is not naive:
            r["ratio_vs_naive"] = r["items_per_s"] / naive["items_per_s"]
            ratio = f"{r['ratio_vs_naive']:.0f}x"
        cpu = (r["median_cpu_python_s"] + r["median_cpu_server_s"]) / r["items"] * 1e6
        print(
            f"{r['variant']:<14}{r['items']:>8}{r['runs']:>5}{r['min_s']:>8.2f}"
            f"{r['median_s']:>9.2f}{r['max_s']:>8.2f}{r['items_per_s']:>9.0f}{ratio:>9}"
            f"{cpu:>12.1f}{r['temporal_runs']:>7}{r['max_history']:>9}"
            f"{r['total_history_median']:>11.0f}"
        )
    print(
        "items/s: items / median wall (engine: execute_workflow -> wait_for_completion; naive:\n"
        "start_workflow -> result()); us CPU/item: median CPU of this process (client + both\n"
        "workers) plus the dev server, per item; T-runs: Temporal runs of the execution\n"
        "(continue-as-new chain); max hist: longest history of any run, over all timed runs;\n"
        "total hist: history events of all runs of one execution (median)."
    )
    print()
    for r in rows:
        cpu_py, cpu_srv = r["median_cpu_python_s"], r["median_cpu_server_s"]
        act = r["activity_run_s_median"]
        if r["variant"] == "naive":
            where = f"sum of activity run times {act:.2f} s over {r['items']} activities"
        else:
            where = (
                f"stream activity ran {act:.2f} s of {r['median_s']:.2f} s "
                f"({r['items'] / act:.0f} items/s inside it)"
            )
        print(f"{r['variant']:<14} CPU python {cpu_py:6.2f} s, server {cpu_srv:6.2f} s; {where}")


def print_events(events: dict[str, Any]) -> None:
    pace = f", paced at {events['rate_limit']:g}/s" if events["rate_limit"] > 0 else ""
    h = events["history"]
    print(
        f"\nEventDriven: {events['events']} events via send_event ({EVENT_CONCURRENCY} in "
        f"flight{pace}), 2 activities per event, max_concurrent_events {EVENT_CONCURRENCY}"
    )
    print(
        f"  all processed after {events['wall_s']:.1f} s = {events['events_per_s']:.0f} "
        f"events/s (sending took {events['send_s']:.1f} s; {events['send_retries']} send "
        f"retries; processed {events['processed']}, failed {events['failed']})"
    )
    failures = events["status_query_failures"]
    if failures:
        print(f"  failed status queries while polling: {len(failures)} ({'; '.join(failures)})")
    print(
        f"  CPU: python {events['cpu_python_s']:.1f} s, server {events['cpu_server_s']:.1f} s "
        f"(until the cancelled run closed)"
    )
    print(
        f"  Temporal runs {h['runs']} (visibility lists {h['visibility_runs']}), max history "
        f"{h['max_history']}, total history {h['total_history']}, ended {events['final_status']}"
    )
    failed = sum(r["wfts_failed"] for r in h["per_run"])
    carried = max(r["start_event_kb"] for r in h["per_run"])
    print(
        f"  failed workflow tasks (refused continue-as-new): {failed}; largest start event "
        f"(carried state): {carried:.0f} KB"
    )
    runs = ", ".join(f"{r['events']}/{r['signals']}/{r['activities']}" for r in h["per_run"])
    print(
        textwrap.fill(
            runs,
            width=100,
            initial_indent="  per run (history events/signals/activities): ",
            subsequent_indent="    ",
        )
    )


def verdicts(figures: dict[str, Any]) -> dict[str, Any]:
    rows = {r["variant"]: r for r in figures.get("stream", [])}
    target = rows.get(f"engine b={TARGET_BATCH}") or next(
        (r for name, r in rows.items() if name.startswith("engine")), None
    )
    result: dict[str, Any] = {}
    if target is not None:
        if "naive" in rows:
            ratio = target["items_per_s"] / rows["naive"]["items_per_s"]
            result["ratio_vs_naive"] = {
                "value": ratio,
                "met": ratio >= TARGET_RATIO,
                "text": f"{target['variant']} / naive = {ratio:.0f}x (target >= 20x)",
            }
        rate = target["items_per_s"]
        result["items_per_s"] = {
            "value": rate,
            "met": rate >= TARGET_ITEMS_PER_S,
            "text": f"{target['variant']}: {rate:.0f} items/s on one worker (target >= 5,000)",
        }
    engines = [r for name, r in rows.items() if name.startswith("engine")]
    if engines:
        longest = max(r["max_history"] for r in engines)
        result["stream_history"] = {
            "value": longest,
            "met": longest < HISTORY_LIMIT,
            "text": (
                f"{engines[0]['items']}-item streams: longest run history {longest} events "
                f"(target < 10,000)"
            ),
        }
    if "events" in figures:
        ev = figures["events"]
        longest = ev["history"]["max_history"]
        ok = longest < HISTORY_LIMIT and ev["processed"] == ev["events"]
        result["event_history"] = {
            "value": longest,
            "met": ok,
            "text": (
                f"{ev['events']}-event run: {ev['processed']} processed, longest run history "
                f"{longest} events over {ev['history']['runs']} runs (target < 10,000)"
            ),
        }
    return result


def parse_sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_streaming", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--items", type=int, default=100_000, help="items per engine stream")
    parser.add_argument("--naive-items", type=int, default=2000, help="items per naive run")
    parser.add_argument("--events", type=int, default=10_000, help="events of the event run")
    parser.add_argument(
        "--event-rate",
        type=float,
        default=0.0,
        help="send at most this many events per second (default 0: as fast as 50 in flight go)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per stream variant")
    parser.add_argument(
        "--batch-sizes", type=parse_sizes, default=[500, 1000, 2000], help="e.g. 500,1000,2000"
    )
    parser.add_argument(
        "--only", choices=("stream", "events"), help="run only the streams or only the events"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--profile", action="store_true", help="profile one engine stream (batch 1000) only"
    )
    args = parser.parse_args(argv)
    if args.only == "events":
        args.batch_sizes, args.naive_items = [], 0
    elif args.only == "stream":
        args.events = 0
    if args.items < 10 or args.runs < 1 or args.naive_items < 0 or args.events < 0:
        parser.error("--items must be >= 10, --runs >= 1, --naive-items/--events >= 0")

    def progress(line: str) -> None:
        print(line, flush=True)

    configure_logging("WARNING")  # the stream activity logs two INFO lines per run
    env = environment()
    print(
        f"bench_streaming {env['date']}: {env['cpus']} CPUs, Python {env['python']}, "
        f"temporalio {env['temporalio']}, load average {env['loadavg_1_5_15']}"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
    server = DevServer(data_dir, port=free_port(), ui_port=0)
    figures: dict[str, Any] = {
        "environment": env,
        "args": {
            "items": args.items,
            "naive_items": args.naive_items,
            "events": args.events,
            "event_rate": args.event_rate,
            "runs": args.runs,
            "batch_sizes": args.batch_sizes,
            "batch_max_wait": BATCH_MAX_WAIT,
            "max_batches_in_flight": MAX_BATCHES_IN_FLIGHT,
        },
    }
    try:
        progress(f"starting dev server on {server.address}")
        server.start()
        if args.profile:
            text = asyncio.run(run_profile(server, args, progress))
        else:
            figures.update(asyncio.run(run_temporal(server, args, progress)))
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    if args.profile:
        print(text)
        figures["profile"] = text
    else:
        if figures.get("stream"):
            print(
                f"\nStreaming source -> processor -> sink: engine ({args.items} items, "
                f"batch_max_wait {BATCH_MAX_WAIT}, max_batches_in_flight "
                f"{MAX_BATCHES_IN_FLIGHT}) vs naive ({args.naive_items} items, 1 activity/item, "
                f"{NAIVE_CONCURRENCY} in flight, continue-as-new every {NAIVE_PER_RUN}), "
                f"{args.runs} runs each\n"
            )
            print_stream_table(figures["stream"])
        if "events" in figures:
            print_events(figures["events"])
        figures["targets"] = verdicts(figures)
        print("\nTargets")
        for verdict in figures["targets"].values():
            print(f"  {'MET   ' if verdict['met'] else 'MISSED'} {verdict['text']}")
    figures["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"\nload average at the end: {figures['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
