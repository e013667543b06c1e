"""How big an execution's Temporal history is, against a hand-written workflow's.

    python -m bench.history_size [--nodes 100] [--scenario chain|fan-out] [--top 12] [--json PATH]

Starts one tuned dev server (``engine.hosting.devserver.DevServer``), the engine's worker and
the hand-written baseline's worker (:mod:`bench.baseline`) with the same settings as
:mod:`bench.bench_engine`, runs the N-node sequential chain (or, with ``--scenario fan-out``,
bench_engine's 1 -> N-2 -> 1 fan-out) once on each, fetches both histories and prints:

* events and bytes (``HistoryEvent.ByteSize()``, what the server stores) per event type, in
  all and per node;
* the biggest payloads of the engine's history (start input, activity inputs and results,
  markers, memo, search attributes, the run's result), with where they are;
* the ratio engine / baseline of bytes and events per node (issue 13's target: at most 1.3).

``--output-bytes N`` pads every node's output (engine plugin and baseline activity alike)
with an N-character string, to see what outputs cost. ``--json`` writes
``{"history-chain-100": {"engine_bytes_per_node": ..., "baseline_bytes_per_node": ...,
"ratio": ..., "engine_events_per_node": ..., "baseline_events_per_node": ..., ...}}`` (the
key names the node count, and ``-output-N`` the padding) with the per-type figures beside.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.worker import Worker

from bench.baseline import BaselineChain, BaselineFanOut, noop_activity
from bench.bench_engine import (
    GRACEFUL_SHUTDOWN,
    INPUT_DATA,
    MAX_CACHED_WORKFLOWS,
    MAX_CONCURRENT_ACTIVITIES,
    Bench,
    Sample,
    chain_definition,
    environment,
    fanout_definition,
)
from engine import AdvancedPluginOrchestrator
from engine.hosting.connection import connect, with_pydantic_converter
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import EngineWorker, create_worker
from engine.temporal.sandbox import workflow_runner
from plugins import PluginRegistry

TARGET_RATIO = 1.3
PADDED_ACTIVITY = "bench_padded"
# --output-bytes: every node's output gets a "pad" string of this many characters.
_pad = {"bytes": 0}


def _output(node_id: str) -> dict[str, Any]:
    """A node's output: distinct per node, as real outputs are (none of it shared)."""
    if not _pad["bytes"]:
        return {"ok": True}
    return {"ok": True, "pad": (f"{node_id}-" * _pad["bytes"])[: _pad["bytes"]]}


async def _noop(inputs: dict[str, Any], config: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """The bench's no-op plugin, with the padding asked for."""
    return _output(ctx.node_id)


@activity.defn(name=PADDED_ACTIVITY)
async def padded_activity(request: dict[str, Any]) -> dict[str, Any]:
    """The baseline's no-op activity, with the same padding."""
    return {"output": _output(request["node_id"]), "attempt": activity.info().attempt}


def _engine_worker(client: Any, task_queue: str) -> EngineWorker:
    registry = PluginRegistry()
    registry.register("noop", _noop, description="returns {'ok': True} (and a pad)")
    return create_worker(
        client,
        task_queue=task_queue,
        plugins=registry,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        graceful_shutdown=GRACEFUL_SHUTDOWN,
    )


def _baseline_worker(client: Any, task_queue: str) -> Worker:
    return Worker(
        with_pydantic_converter(client),
        task_queue=task_queue,
        workflows=[BaselineChain, BaselineFanOut],
        activities=[noop_activity, padded_activity],
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_concurrent_workflow_tasks=None,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN),
        workflow_runner=workflow_runner(),
    )


@dataclass
class PayloadSize:
    event_id: int
    event_type: str
    path: str
    size: int
    preview: str


@dataclass
class HistoryFigures:
    """Events and bytes of one history, in all and by event type."""

    nodes: int
    events: int = 0
    bytes: int = 0
    by_type: dict[str, list[int]] = field(default_factory=dict)  # type -> [count, bytes]
    payloads: list[PayloadSize] = field(default_factory=list)

    @property
    def bytes_per_node(self) -> float:
        return self.bytes / self.nodes

    @property
    def events_per_node(self) -> float:
        return self.events / self.nodes

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "bytes": self.bytes,
            "by_type": {
                name: {"events": count, "bytes": size}
                for name, (count, size) in sorted(self.by_type.items())
            },
        }


def _type_name(event: HistoryEvent) -> str:
    return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")


def _payloads(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every Payload inside a protobuf message, with its field path."""
    if isinstance(message, Payload):
        yield path, message
        return
    for descriptor, value in message.ListFields():
        name = f"{path}.{descriptor.name}" if path else descriptor.name
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    yield from _payloads(item, f"{name}[{key}]")
        elif isinstance(value, Message):
            yield from _payloads(value, name)
        else:  # a repeated field
            for index, item in enumerate(value):
                yield from _payloads(item, f"{name}[{index}]")


def measure(events: list[HistoryEvent], nodes: int) -> HistoryFigures:
    figures = HistoryFigures(nodes=nodes)
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for event in events:
        size = event.ByteSize()
        name = _type_name(event)
        by_type[name][0] += 1
        by_type[name][1] += size
        figures.events += 1
        figures.bytes += size
        for path, payload in _payloads(event):
            data = payload.data.decode("utf-8", "replace")
            figures.payloads.append(
                PayloadSize(
                    event.event_id, name, path, payload.ByteSize(), data[:100].replace("\n", " ")
                )
            )
    figures.by_type = dict(by_type)
    return figures


def print_figures(title: str, figures: HistoryFigures) -> None:
    print(f"\n{title}: {figures.events} events, {figures.bytes:,} bytes")
    print(
        f"  per node: {figures.events_per_node:.2f} events, {figures.bytes_per_node:,.0f} bytes\n"
    )
    print(f"  {'event type':44} {'events':>7} {'bytes':>10} {'B/event':>8} {'B/node':>8}")
    for name, (count, size) in sorted(figures.by_type.items(), key=lambda item: -item[1][1]):
        print(f"  {name:44} {count:7} {size:10,} {size / count:8.0f} {size / figures.nodes:8.0f}")


def print_payloads(title: str, figures: HistoryFigures, top: int) -> None:
    print(f"\n{title}: the {top} biggest payloads")
    biggest = sorted(figures.payloads, key=lambda p: -p.size)[:top]
    for p in biggest:
        print(f"  #{p.event_id:<5} {p.event_type:32} {p.path:50} {p.size:8,} B  {p.preview[:60]}")
    kinds: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for p in figures.payloads:
        kinds[(p.event_type, p.path)][0] += 1
        kinds[(p.event_type, p.path)][1] += p.size
    print(f"\n{title}: payload bytes by where they are")
    for (event_type, path), (count, size) in sorted(kinds.items(), key=lambda item: -item[1][1])[
        :top
    ]:
        print(f"  {event_type:32} {path:50} {count:5} x {size / count:8,.0f} B = {size:9,} B")


@dataclass
class ChainRuns:
    """One run of the chain on each side: their walls (start to result) and histories."""

    engine: Sample
    baseline: Sample
    engine_events: list[HistoryEvent]
    baseline_events: list[HistoryEvent]


async def chain_runs(server: DevServer, nodes: int, scenario: str = "chain") -> ChainRuns:
    """Run the ``nodes`` chain (or fan-out) once on each side on ``server`` (workers in this
    process) and fetch both histories."""
    client = await connect(server.address)
    suffix = uuid.uuid4().hex[:8]
    bench = Bench(
        client=client,
        orchestrator=AdvancedPluginOrchestrator(client, task_queue=f"history-engine-{suffix}"),
        engine_queue=f"history-engine-{suffix}",
        baseline_queue=f"history-baseline-{suffix}",
        nodes=nodes,
    )
    async with (
        _engine_worker(client, bench.engine_queue),
        _baseline_worker(client, bench.baseline_queue),
    ):
        build = chain_definition if scenario == "chain" else fanout_definition
        definition = build(f"history-{scenario}-{suffix}", nodes)
        await bench.orchestrator.register_workflow(definition)
        bench.engine_ids[scenario] = definition.workflow_id
        engine = await bench.run_engine(scenario)
        baseline = await bench.run_baseline(scenario, PADDED_ACTIVITY if _pad["bytes"] else None)
        engine_history = await client.get_workflow_handle(engine.workflow_id).fetch_history()
        baseline_history = await client.get_workflow_handle(baseline.workflow_id).fetch_history()
    return ChainRuns(engine, baseline, list(engine_history.events), list(baseline_history.events))


async def histories(
    nodes: int, scenario: str = "chain"
) -> tuple[list[HistoryEvent], list[HistoryEvent], str, str]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-history-"))
    server = DevServer(data_dir, port=free_port(), ui_port=0)
    try:
        server.start()
        runs = await chain_runs(server, nodes, scenario)
        return (
            runs.engine_events,
            runs.baseline_events,
            runs.engine.workflow_id,
            runs.baseline.workflow_id,
        )
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history_size", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--nodes", type=int, default=100, help="nodes of the chain")
    parser.add_argument(
        "--scenario", choices=("chain", "fan-out"), default="chain", help="the graph to run"
    )
    parser.add_argument("--top", type=int, default=12, help="biggest payloads to list")
    parser.add_argument(
        "--output-bytes",
        type=int,
        default=0,
        help="pad every node's output with a string of this many characters (both chains)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.output_bytes < 0:
        parser.error("--nodes must be >= 2 and --output-bytes >= 0")
    _pad["bytes"] = args.output_bytes
    env = environment()
    print(
        f"history_size {env['date']}: temporalio {env['temporalio']}, input {INPUT_DATA}, "
        f"outputs padded by {args.output_bytes} characters"
    )
    engine_events, baseline_events, engine_id, baseline_id = asyncio.run(
        histories(args.nodes, args.scenario)
    )
    engine = measure(engine_events, args.nodes)
    baseline = measure(baseline_events, args.nodes)
    print_figures(f"engine ({engine_id})", engine)
    print_figures(f"baseline ({baseline_id})", baseline)
    print_payloads("engine", engine, args.top)
    print_payloads("baseline", baseline, args.top)
    ratio = engine.bytes_per_node / baseline.bytes_per_node
    events_ratio = engine.events_per_node / baseline.events_per_node
    print(
        f"\n{args.nodes}-node {args.scenario}, per node: engine {engine.bytes_per_node:,.0f} B / "
        f"{engine.events_per_node:.2f} events, baseline {baseline.bytes_per_node:,.0f} B / "
        f"{baseline.events_per_node:.2f} events: bytes {ratio:.2f}x, events {events_ratio:.2f}x "
        f"(target: at most {TARGET_RATIO}x)"
    )
    if args.json:
        key = f"history-{args.scenario}-{args.nodes}"
        if args.output_bytes:
            key += f"-output-{args.output_bytes}"
        figures = {
            key: {
                "engine_bytes_per_node": round(engine.bytes_per_node, 1),
                "baseline_bytes_per_node": round(baseline.bytes_per_node, 1),
                "ratio": round(ratio, 3),
                "engine_events_per_node": round(engine.events_per_node, 2),
                "baseline_events_per_node": round(baseline.events_per_node, 2),
                "events_ratio": round(events_ratio, 3),
                "engine": engine.as_json(),
                "baseline": baseline.as_json(),
            },
            "environment": env,
        }
        args.json.write_text(json.dumps(figures, indent=2, default=str))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
