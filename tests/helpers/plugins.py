"""Plugins used by the tests. Side effects are counted in files, so they survive worker
restarts and are visible from other processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from plugins import PluginContext, PluginRegistry


def count_file(directory: Path, name: str) -> Path:
    return directory / f"{name}.count"


def read_count(directory: Path, name: str) -> int:
    """How many times the side effect ``name`` happened."""
    path = count_file(directory, name)
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_registry(side_effects: Path) -> PluginRegistry:
    """Built-ins plus: echo, fail, flaky, sleep, block, count, bad_output, big_output."""
    registry = PluginRegistry.with_builtins()

    @registry.plugin("echo")
    async def echo(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Returns its inputs, its config and its node id."""
        out = {"node": ctx.node_id, "inputs": inputs}
        out.update(config.get("emit", {}))
        return out

    @registry.plugin("fail")
    async def fail(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Always raises ValueError."""
        raise ValueError(config.get("message", "boom"))

    @registry.plugin("flaky")
    async def flaky(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Fails until attempt ``succeed_on``."""
        if ctx.attempt < int(config.get("succeed_on", 2)):
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return {"attempt": ctx.attempt}

    @registry.plugin("sleep")
    async def sleep(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Sleeps ``seconds`` (async), recording a start marker first."""
        _append(side_effects, f"{ctx.node_id}.started", ctx.attempt)
        await asyncio.sleep(float(config.get("seconds", 1.0)))
        _append(side_effects, ctx.node_id, ctx.attempt)
        return {"slept": config.get("seconds", 1.0)}

    @registry.plugin("block")
    def block(inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext) -> dict[str, Any]:
        """Blocks its thread with time.sleep (a synchronous plugin)."""
        time.sleep(float(config.get("seconds", 1.0)))
        return {"blocked": config.get("seconds", 1.0)}

    @registry.plugin("count")
    def count(inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext) -> dict[str, Any]:
        """Records one side effect per call, then returns."""
        _append(side_effects, ctx.node_id, ctx.attempt)
        return {"counted": ctx.node_id}

    @registry.plugin("bad_output")
    async def bad_output(inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext) -> Any:
        """Returns something that is not a JSON object (counts calls)."""
        _append(side_effects, ctx.node_id, ctx.attempt)
        kind = config.get("kind", "set")
        return {"value": {1, 2}} if kind == "set" else ["not", "a", "dict"]

    @registry.plugin("big_output")
    async def big_output(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Returns ``size`` bytes of text (counts calls)."""
        _append(side_effects, ctx.node_id, ctx.attempt)
        return {"blob": "x" * int(config.get("size", 3_000_000))}

    return registry


def _append(directory: Path, name: str, attempt: int) -> None:
    with count_file(directory, name).open("a") as handle:
        handle.write(f"{attempt}\n")
