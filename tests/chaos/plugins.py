"""Plugins of the chaos scenarios. Every attempt writes its phases to the ledger, so the
checker can compare what ran with what the execution recorded.

``effect`` (async, heartbeats a checkpoint when asked) and ``effect_blocking`` (synchronous,
in a thread, never heartbeats itself) take the same configuration:

``seconds``        how long an attempt works (default 0)
``steps``          the work is done in this many steps (default 10)
``checkpoint``     heartbeat the step reached; a retried attempt resumes from it (``effect``)
``slow_attempts``  only attempts up to this one take ``seconds`` (default: all)
``fail_attempts``  attempts up to this one fail with ConnectionError (default 0)
``dedup``          apply the effect once per idempotency key (run id + activity id)
``emit``           extra keys of the output (conditions and ports read them)

The output names node, attempt and worker process, and summarises the inputs: an upstream
node's whole output by that node's id, anything else as it is.

For the long-running scenarios (all built-in plugins are there too, e.g. the file monitor):

``chaos_feed``  a source of ``{"n": 0}``, ``{"n": 1}``, ... up to ``count`` (forever
                without), ``delay`` seconds apart; ``fail: true`` makes every read fail
``take_item``   an EventDriven pass node: records that its pass (idempotency key) took the
                item whose number is the ``key`` field of its input (default ``"n"``; the
                digits of a string, e.g. a file name), after ``seconds``
``sink_items``  a stream sink: records every item of the batch (``delay`` seconds a batch)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from plugins import PluginContext, PluginRegistry, source_plugin
from tests.chaos.ledger import Ledger


def chaos_registry(directory: Path) -> PluginRegistry:
    """The chaos plugins writing to the ledger in ``directory``."""
    ledger = Ledger.in_directory(directory)
    registry = PluginRegistry.with_builtins()

    @registry.plugin("effect")
    async def effect(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """An async side effect recorded in the ledger."""
        await asyncio.to_thread(_begin, ledger, config, ctx)
        start = int(ctx.checkpoint or 0) if config.get("checkpoint") else 0
        steps, pause = _work(config, ctx)
        for step in range(start, steps):
            await asyncio.sleep(pause)
            if config.get("checkpoint"):
                ctx.heartbeat(step + 1)
        return await asyncio.to_thread(_finish, ledger, inputs, config, ctx, start)

    @registry.plugin("effect_blocking")
    def effect_blocking(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """The same effect, blocking its thread and never heartbeating itself."""
        _begin(ledger, config, ctx)
        steps, pause = _work(config, ctx)
        for _ in range(steps):
            time.sleep(pause)
            if ctx.is_cancelled:
                raise RuntimeError("cancelled")
        return _finish(ledger, inputs, config, ctx, 0)

    @source_plugin("chaos_feed")
    async def chaos_feed(
        config: dict[str, Any], checkpoint: Any, ctx: PluginContext
    ) -> AsyncIterator[dict[str, Any]]:
        """Numbered items, ``delay`` seconds apart."""
        count = config.get("count")
        delay = float(config.get("delay", 0))
        n = int(checkpoint or 0)
        while count is None or n < int(count):
            if config.get("fail"):
                raise ConnectionError(f"{ctx.node_id} cannot read (attempt {ctx.attempt})")
            if delay:
                await asyncio.sleep(delay)
            yield {"n": n}
            n += 1

    @registry.plugin("take_item")
    async def take_item(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Record which pass took which item."""
        await asyncio.sleep(float(config.get("seconds", 0)))
        item = _item_number(inputs, str(config.get("key", "n")))
        await asyncio.to_thread(ledger.handle_items, ctx.execution_id, [item], ctx.idempotency_key)
        return {"item": item, "attempt": ctx.attempt, "pid": os.getpid()}

    @registry.plugin("sink_items")
    async def sink_items(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Record every item of the batch."""
        items = [item for batch in inputs.values() if isinstance(batch, list) for item in batch]
        await asyncio.sleep(float(config.get("delay", 0)))
        numbers = [int(item["n"]) for item in items]
        await asyncio.to_thread(ledger.handle_items, ctx.execution_id, numbers, "sink")
        return {"written": len(numbers)}

    registry.add(chaos_feed)
    return registry


def _item_number(inputs: dict[str, Any], key: str) -> int:
    """The ``key`` field of the inputs (an event's payload), or of one of its values."""
    candidates = [inputs, *(v for v in inputs.values() if isinstance(v, dict))]
    for value in candidates:
        if key in value:
            found = value[key]
            if isinstance(found, str):
                found = "".join(ch for ch in found if ch.isdigit())
            return int(found)
    raise ValueError(f"no '{key}' in the inputs {sorted(inputs)}")


def _begin(ledger: Ledger, config: dict[str, Any], ctx: PluginContext) -> None:
    ledger.record(ctx.execution_id, ctx.node_id, ctx.attempt, "started")
    if ctx.attempt <= int(config.get("fail_attempts", 0)):
        ledger.record(ctx.execution_id, ctx.node_id, ctx.attempt, "failed")
        raise ConnectionError(f"attempt {ctx.attempt} of {ctx.node_id} fails on purpose")


def _work(config: dict[str, Any], ctx: PluginContext) -> tuple[int, float]:
    seconds = float(config.get("seconds", 0))
    slow = int(config.get("slow_attempts", 0))
    if slow and ctx.attempt > slow:
        seconds = 0.0
    steps = max(1, int(config.get("steps", 10))) if seconds else 0
    return steps, seconds / steps if steps else 0.0


def _finish(
    ledger: Ledger,
    inputs: dict[str, Any],
    config: dict[str, Any],
    ctx: PluginContext,
    resumed_from: int,
) -> dict[str, Any]:
    if config.get("dedup"):
        ledger.apply_once(ctx.idempotency_key, ctx.execution_id, ctx.node_id, ctx.attempt)
    ledger.record(ctx.execution_id, ctx.node_id, ctx.attempt, "done")
    return {
        **config.get("emit", {}),
        "node": ctx.node_id,
        "attempt": ctx.attempt,
        "pid": os.getpid(),
        "resumed_from": resumed_from,
        "inputs": {key: _summary(value) for key, value in inputs.items()},
    }


def _summary(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("node"), str):
        return value["node"]
    return value
