"""The plugins of :mod:`bench.bench_streaming`: a numbers source, a doubling processor, a
counting sink and an echo for event passes.

The sink counts items into :data:`COUNTS` (keyed by its ``name`` configuration) in this
process, so the bench can check that every item reached it exactly once. The naive
baseline's activity (:mod:`bench.baseline_streaming`) calls the same processor and sink
functions on one-item batches, so both designs do the same user work per item.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from plugins import PluginContext, PluginRegistry, source_plugin

PAYLOAD = "x" * 50

# items the sink received, by its ``name`` configuration (this process only)
COUNTS: defaultdict[str, int] = defaultdict(int)


@source_plugin("bench_numbers")
async def bench_numbers(
    config: dict[str, Any], checkpoint: Any, ctx: PluginContext
) -> AsyncIterator[dict[str, Any]]:
    """{"n": i, "payload": 50 bytes} for i from the checkpoint up to ``count``."""
    for i in range(int(checkpoint or 0), int(config.get("count", 0))):
        yield {"n": i, "payload": PAYLOAD}


def item(n: int) -> dict[str, Any]:
    """The item ``bench_numbers`` yields at position ``n``."""
    return {"n": n, "payload": PAYLOAD}


async def bench_double(
    inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext | None
) -> dict[str, Any]:
    """Processor: n -> n * 2 for every item of every input list."""
    return {
        "items": [
            {**one, "n": one["n"] * 2}
            for batch in inputs.values()
            if isinstance(batch, list)
            for one in batch
        ]
    }


async def bench_count(
    inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext | None
) -> dict[str, Any]:
    """Sink: adds the number of items it got to ``COUNTS[config["name"]]``."""
    written = sum(len(batch) for batch in inputs.values() if isinstance(batch, list))
    COUNTS[str(config.get("name", ""))] += written
    return {"written": written}


async def bench_echo(
    inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext | None
) -> dict[str, Any]:
    """Event-pass node: returns its inputs."""
    return {"inputs": inputs}


def registry() -> PluginRegistry:
    """The engine worker's registry: the four plugins above, no built-ins."""
    plugins = PluginRegistry()
    plugins.add(bench_numbers)
    plugins.register("bench_double", bench_double)
    plugins.register("bench_count", bench_count)
    plugins.register("bench_echo", bench_echo)
    return plugins
