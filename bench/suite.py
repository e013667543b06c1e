"""Every benchmark scenario against its hand-written Temporal baseline, in one process, on one
dev server, in one run.

    python -m bench.suite [--quick] [--json PATH]

Starts one ``DevServer`` (the embedded default's binary and tuning, which includes
``system.enableEagerWorkflowStart`` and ``system.enableActivityEagerExecution``; SQLite in a
temporary directory, free port, no UI) and runs, one after another, the scenarios of the
single-purpose scripts, reusing their functions (each scenario's workers run in this process
while it runs; every run is interleaved with its baseline's):

=============================  =============================================================
key                            engine / hand-written baseline (module)
=============================  =============================================================
``chain-100``                  100-node activity chain / ``BaselineChain`` (bench_engine)
``fanout-100``                 1 -> 98 -> 1 activity fan-out / ``BaselineFanOut`` (bench_engine)
``concurrent-200``             200 3-node chains at once / 200 ``BaselineChain`` (bench_concurrency)
``light-chain-100``            100 light nodes / ``BaselineChain``, activity per node (bench_light)
``light-chain-100-vs-local``   the same runs / ``BaselineLocalChain``, local activities
``light-latency-3``            start to result of a 3-node light run, eager and not, p50/p95 /
                               ``BaselineLocalChain`` of 3, eager and not (bench_light)
``map-10000-batched``          batched Splitter map / ``BaselineBatchedMap`` (bench_map_batched)
``stream``                     source -> processor -> sink, items/s / one activity per item,
                               ``NaiveStream`` (bench_streaming)
``history-chain-100``          history bytes and events per node of one 100-node chain /
                               ``BaselineChain`` (bench/history_size.py, when present);
                               ``ratio`` is of bytes per node, times beside
=============================  =============================================================

Fairness: the engine's runs start eagerly here (its worker shares the starting client's
connection, ``engine.hosting.local_workers``), so every hand-written baseline is started with
``request_eager_start=True`` too; ``light-latency-3`` also measures both sides without it.
Each scenario records how many of its runs' start events say the server accepted the eager
start (``eager_accepted``).

Every key holds ``engine_median_s``, ``baseline_median_s`` and ``ratio`` (engine over baseline;
below 1 is faster than hand-written), plus its own figures: ``engine_min_s``/``engine_max_s``,
``p50``/``p95`` for latency, ``items_per_s`` for the stream, ``runs_per_s`` for the concurrent
runs. For ``stream`` the baseline's median is scaled to the engine's item count (the naive
design is too slow to push as many items), so ``ratio`` compares seconds per item.
``--quick`` runs each scenario once on tiny sizes (a smoke test, not figures).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import bench_engine, bench_light, bench_map_batched, bench_streaming
from bench.bench_concurrency import Sides, concurrent_rounds
from engine.base.logging import configure_logging
from engine.hosting.connection import connect
from engine.hosting.devserver import TUNING, DevServer, free_port

REQUIRED_FLAGS = ("system.enableEagerWorkflowStart=true",)
FAIRNESS = (
    "both sides start eagerly (the engine on its own, its worker being in this process; the "
    "hand-written workflows with request_eager_start=True); light-latency-3 also without"
)


@dataclass(frozen=True)
class Sizes:
    runs: int = 5
    nodes: int = 100
    concurrent: int = 200
    concurrent_nodes: int = 3
    concurrent_runs: int = 3
    latency_runs: int = 30
    map_items: int = 10_000
    map_batch: int = 100
    map_concurrency: int = 1000
    map_runs: int = 3
    stream_items: int = 100_000
    stream_batch: int = 1000
    naive_items: int = 2000
    stream_runs: int = 3


FULL = Sizes()
QUICK = Sizes(
    runs=1,
    nodes=5,
    concurrent=5,
    concurrent_runs=1,
    latency_runs=3,
    map_items=100,
    map_batch=10,
    map_concurrency=50,
    map_runs=1,
    stream_items=1000,
    naive_items=20,
    stream_runs=1,
)


def _spread(prefix: str, values: list[float]) -> dict[str, float]:
    return {
        f"{prefix}_min_s": min(values),
        f"{prefix}_median_s": statistics.median(values),
        f"{prefix}_max_s": max(values),
    }


def _paired(engine: list[float], baseline: list[float]) -> dict[str, float]:
    """The median of the ratios of runs run back to back (``paired_ratio``): it shrugs off a
    round that the machine's load slowed on one side only."""
    if len(engine) != len(baseline) or not engine:
        return {}
    return {"paired_ratio": statistics.median(e / b for e, b in zip(engine, baseline, strict=True))}


def _row(engine: list[float], baseline: list[float], **extra: Any) -> dict[str, Any]:
    row = {**_spread("engine", engine), **_spread("baseline", baseline)}
    row["ratio"] = row["engine_median_s"] / row["baseline_median_s"]
    row.update(_paired(engine, baseline))
    row["runs"] = len(engine)
    row.update(extra)
    return row


# -- the scenarios -----------------------------------------------------------------------------


async def chain_and_fanout(
    server: DevServer, sizes: Sizes, progress: Callable[[str], None]
) -> dict[str, Any]:
    series = await bench_engine.run_temporal(server, sizes.runs, sizes.nodes, None, progress)
    by = {(s.scenario, s.variant): s for s in series}
    rows: dict[str, Any] = {}
    for scenario, key in (("chain", "chain-100"), ("fan-out", "fanout-100")):
        engine, baseline = by[(scenario, "engine")], by[(scenario, "baseline")]
        rows[key] = _row(
            engine.walls(),
            baseline.walls(),
            nodes=sizes.nodes,
            engine_ms_per_node=engine.median("wall") / sizes.nodes * 1000,
            engine_history_events=engine.median("events"),
            engine_history_kb=engine.median("history_kb"),
            baseline_history_events=baseline.median("events"),
            baseline_history_kb=baseline.median("history_kb"),
            history_kb_ratio=engine.median("history_kb") / baseline.median("history_kb"),
            engine_cpu_python_s=engine.median("cpu_python"),
            baseline_cpu_python_s=baseline.median("cpu_python"),
            eager_accepted={
                "engine": sum(s.history["eager_accepted"] for s in engine.samples),
                "baseline": sum(s.history["eager_accepted"] for s in baseline.samples),
                "of": len(engine.samples),
            },
        )
    return rows


async def concurrent(
    server: DevServer, sizes: Sizes, progress: Callable[[str], None]
) -> dict[str, Any]:
    client = await connect(server.address)
    sides = Sides(client, uuid.uuid4().hex[:8])
    async with (
        bench_engine._engine_worker(client, sides.engine_queue),
        bench_engine._baseline_worker(client, sides.baseline_queue),
    ):
        rates = await concurrent_rounds(
            sides, sizes.concurrent_runs, sizes.concurrent, sizes.concurrent_nodes, progress
        )
    # seconds for the whole round (lower is better, like every other scenario)
    engine = [sizes.concurrent / rate for rate in rates["engine"]]
    baseline = [sizes.concurrent / rate for rate in rates["baseline"]]
    return {
        "concurrent-200": _row(
            engine,
            baseline,
            concurrent=sizes.concurrent,
            nodes=sizes.concurrent_nodes,
            engine_runs_per_s=statistics.median(rates["engine"]),
            baseline_runs_per_s=statistics.median(rates["baseline"]),
        )
    }


async def light(server: DevServer, sizes: Sizes, progress: Callable[[str], None]) -> dict[str, Any]:
    figures = await bench_light.run_scenarios(
        server, sizes.runs, sizes.nodes, sizes.latency_runs, progress
    )
    chain = figures[bench_light.CHAIN]
    spread = chain["spread"]

    def walls(name: str) -> dict[str, float]:
        return {"min": spread[name]["min_s"], "max": spread[name]["max_s"]}

    engine, activity, local = (
        chain["engine_median_s"],
        chain["baseline_median_s"],
        chain["local_baseline_median_s"],
    )
    base = {
        "nodes": sizes.nodes,
        "runs": chain["runs"],
        "engine_median_s": engine,
        "engine_min_s": walls("engine-light")["min"],
        "engine_max_s": walls("engine-light")["max"],
        "engine_history_events": chain["engine_history"].get("events"),
        "engine_history_kb": chain["engine_history"].get("history_kb"),
    }
    lat = figures[bench_light.LATENCY]
    return {
        "light-chain-100": {
            **base,
            "baseline": "BaselineChain (one activity per node)",
            "baseline_median_s": activity,
            "baseline_min_s": walls("baseline-activity")["min"],
            "baseline_max_s": walls("baseline-activity")["max"],
            "ratio": engine / activity,
            **_paired(chain["walls"]["engine-light"], chain["walls"]["baseline-activity"]),
            "target_ratio": 0.35,
        },
        "light-chain-100-vs-local": {
            **base,
            "baseline": "BaselineLocalChain (one local activity per node)",
            "baseline_median_s": local,
            "baseline_min_s": walls("baseline-local")["min"],
            "baseline_max_s": walls("baseline-local")["max"],
            "ratio": engine / local,
            **_paired(chain["walls"]["engine-light"], chain["walls"]["baseline-local"]),
            "target_ratio": 1.2,
        },
        "light-latency-3": {
            "runs": lat["runs"],
            "started": "eager on both sides (p50/p95 without eager beside)",
            "engine_median_s": lat["engine_eager_p50_s"],
            "baseline_median_s": lat["baseline_eager_p50_s"],
            "ratio": lat["engine_eager_p50_s"] / lat["baseline_eager_p50_s"],
            **_paired(lat["walls"]["engine-eager"], lat["walls"]["baseline-eager"]),
            "engine_min_s": lat["spread"]["engine-eager"]["min_s"],
            "engine_max_s": lat["spread"]["engine-eager"]["max_s"],
            "engine_eager_p50_s": lat["engine_eager_p50_s"],
            "engine_eager_p95_s": lat["engine_eager_p95_s"],
            "engine_p50_s": lat["engine_p50_s"],
            "engine_p95_s": lat["engine_p95_s"],
            "baseline_eager_p50_s": lat["baseline_eager_p50_s"],
            "baseline_eager_p95_s": lat["baseline_eager_p95_s"],
            "baseline_p50_s": lat["baseline_p50_s"],
            "baseline_p95_s": lat["baseline_p95_s"],
            "plain_ratio": lat["engine_p50_s"] / lat["baseline_p50_s"],
            "target_p50_s": 0.050,
            "eager_accepted": {
                "engine": lat["engine_eager_accepted"],
                "baseline": lat["baseline_eager_accepted"],
                "engine_plain": lat["engine_plain_eager_accepted"],
                "of": lat["runs"] + 1,
            },
        },
    }


async def batched_map(
    server: DevServer, sizes: Sizes, progress: Callable[[str], None]
) -> dict[str, Any]:
    row = await bench_map_batched.measure(
        server, sizes.map_items, sizes.map_batch, sizes.map_concurrency, sizes.map_runs
    )
    row.update(_paired(row["engine_walls_s"], row["baseline_walls_s"]))
    return {bench_map_batched.SCENARIO: row}


async def stream(
    server: DevServer, sizes: Sizes, progress: Callable[[str], None]
) -> dict[str, Any]:
    args = argparse.Namespace(
        items=sizes.stream_items,
        batch_sizes=[sizes.stream_batch],
        naive_items=sizes.naive_items,
        runs=sizes.stream_runs,
        events=0,
        event_rate=0.0,
    )
    figures = await bench_streaming.run_temporal(server, args, progress)
    rows = {row["variant"]: row for row in figures["stream"]}
    engine, naive = rows[f"engine b={sizes.stream_batch}"], rows["naive"]
    scale = sizes.stream_items / sizes.naive_items
    engine_walls = engine["wall_s"]
    naive_walls = [wall * scale for wall in naive["wall_s"]]
    return {
        "stream": _row(
            engine_walls,
            naive_walls,
            items=sizes.stream_items,
            batch_size=sizes.stream_batch,
            items_per_s=engine["items_per_s"],
            baseline_items=sizes.naive_items,
            baseline_items_per_s=naive["items_per_s"],
            baseline_scaled_to_items=sizes.stream_items,
            engine_history_events=engine["max_history"],
            target_items_per_s=250_000,
        )
    }


async def history_chain(
    server: DevServer, sizes: Sizes, progress: Callable[[str], None]
) -> dict[str, Any]:
    """bench/history_size.py's figures: one chain run on each side, history bytes and events
    per node (``ratio`` here is bytes per node, as in that script's JSON)."""
    from bench import history_size

    runs = await history_size.chain_runs(server, sizes.nodes)
    engine = history_size.measure(runs.engine_events, sizes.nodes)
    baseline = history_size.measure(runs.baseline_events, sizes.nodes)
    progress(
        f"  engine {engine.bytes_per_node:,.0f} B / {engine.events_per_node:.2f} events per "
        f"node, baseline {baseline.bytes_per_node:,.0f} B / {baseline.events_per_node:.2f}"
    )
    return {
        "history-chain-100": {
            "nodes": sizes.nodes,
            "runs": 1,
            "ratio_of": "history bytes per node",
            "engine_median_s": runs.engine.wall,
            "engine_min_s": runs.engine.wall,
            "engine_max_s": runs.engine.wall,
            "baseline_median_s": runs.baseline.wall,
            "ratio": engine.bytes_per_node / baseline.bytes_per_node,
            "time_ratio": runs.engine.wall / runs.baseline.wall,
            "engine_bytes_per_node": engine.bytes_per_node,
            "baseline_bytes_per_node": baseline.bytes_per_node,
            "engine_events_per_node": engine.events_per_node,
            "baseline_events_per_node": baseline.events_per_node,
            "events_ratio": engine.events_per_node / baseline.events_per_node,
            "target_ratio": history_size.TARGET_RATIO,
        }
    }


def _has_history_size() -> bool:
    return importlib.util.find_spec("bench.history_size") is not None


SCENARIOS: list[Callable[[DevServer, Sizes, Callable[[str], None]], Any]] = [
    chain_and_fanout,
    concurrent,
    light,
    batched_map,
    stream,
    *([history_chain] if _has_history_size() else []),
]


async def run_all(server: DevServer, sizes: Sizes, progress: Callable[[str], None]) -> Any:
    results: dict[str, Any] = {}
    for scenario in SCENARIOS:
        progress(f"\n== {scenario.__name__}")
        started = time.perf_counter()
        results.update(await scenario(server, sizes, progress))
        progress(f"   ({time.perf_counter() - started:.0f} s)")
    return results


# -- output ----------------------------------------------------------------------------------


def _extra(key: str, row: dict[str, Any]) -> str:
    if key == "light-latency-3":
        return (
            f"p50/p95 ms eager: engine {row['engine_eager_p50_s'] * 1000:.1f}/"
            f"{row['engine_eager_p95_s'] * 1000:.1f}, baseline "
            f"{row['baseline_eager_p50_s'] * 1000:.1f}/{row['baseline_eager_p95_s'] * 1000:.1f}; "
            f"plain: engine {row['engine_p50_s'] * 1000:.1f}/{row['engine_p95_s'] * 1000:.1f}, "
            f"baseline {row['baseline_p50_s'] * 1000:.1f}/{row['baseline_p95_s'] * 1000:.1f}"
        )
    if key == "stream":
        return (
            f"{row['items_per_s']:,.0f} items/s vs {row['baseline_items_per_s']:,.0f} "
            f"(baseline on {row['baseline_items']:,} items, scaled)"
        )
    if key == "concurrent-200":
        return f"{row['engine_runs_per_s']:.1f} vs {row['baseline_runs_per_s']:.1f} runs/s"
    if key == bench_map_batched.SCENARIO:
        return f"{row['items']:,} items, {row['engine_items_per_s']:,} items/s"
    if key == "history-chain-100":
        return (
            f"ratio of history bytes per node: {row['engine_bytes_per_node']:,.0f} vs "
            f"{row['baseline_bytes_per_node']:,.0f} B, events {row['engine_events_per_node']:.2f}"
            f" vs {row['baseline_events_per_node']:.2f} ({row['events_ratio']:.2f}x)"
        )
    if key in ("chain-100", "fanout-100"):
        return (
            f"history {row['engine_history_kb']:.1f} vs {row['baseline_history_kb']:.1f} KB "
            f"({row['history_kb_ratio']:.2f}x)"
        )
    return ""


def _ratio(value: float) -> str:
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.4f}x"


def print_table(results: dict[str, Any]) -> None:
    header = (
        f"{'scenario':<26}{'runs':>5}{'min s':>9}{'median s':>10}{'max s':>9}"
        f"{'base med s':>11}{'ratio':>8}{'paired':>8}  notes"
    )
    print(header)
    print("-" * len(header))
    for key, row in results.items():
        print(
            f"{key:<26}{row.get('runs', 0):>5}{row['engine_min_s']:>9.3f}"
            f"{row['engine_median_s']:>10.3f}{row['engine_max_s']:>9.3f}"
            f"{row['baseline_median_s']:>11.3f}{_ratio(row['ratio']):>8}"
            f"{_ratio(row['paired_ratio']) if 'paired_ratio' in row else '':>8}  {_extra(key, row)}"
        )
    print(
        "(engine min/median/max; ratio = engine median / baseline median; paired = median of "
        "the ratios of\nruns run back to back)\nstarts: " + FAIRNESS
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.suite", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL

    def progress(line: str) -> None:
        print(line, flush=True)

    configure_logging("WARNING")  # the stream activity logs INFO lines per run
    env = bench_engine.environment()
    print(
        f"bench.suite {env['date']}: {env['cpus']} CPUs, Python {env['python']}, temporalio "
        f"{env['temporalio']}, load average {env['loadavg_1_5_15']}"
        + (" (--quick: smoke test sizes)" if args.quick else "")
    )
    data_dir = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    extra: list[str] = []
    for flag in REQUIRED_FLAGS:
        if flag not in TUNING:
            extra += ["--dynamic-config-value", flag]
    server = DevServer(data_dir, port=free_port(), ui_port=0, extra_args=extra)
    try:
        server.start()
        progress(f"  server command: {' '.join(server.command()[1:])}")
        results = asyncio.run(run_all(server, sizes, progress))
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print()
    if not _has_history_size():
        print("history-chain-100: skipped (bench/history_size.py is not in this tree)\n")
    print_table(results)
    load_end = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at the end: {load_end}")
    if args.json:
        document = {
            "environment": env,
            "loadavg_end": load_end,
            "quick": args.quick,
            "sizes": sizes.__dict__,
            "starts": FAIRNESS,
            **results,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
