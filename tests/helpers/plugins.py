"""Plugins used by the tests. Side effects are counted in files, so they survive worker
restarts and are visible from other processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from plugins import (
    PluginBase,
    PluginContext,
    PluginRegistry,
    Source,
    SourceItem,
    SourceSpec,
    source_plugin,
)


def count_file(directory: Path, name: str) -> Path:
    return directory / f"{name}.count"


def read_count(directory: Path, name: str) -> int:
    """How many times the side effect ``name`` happened."""
    path = count_file(directory, name)
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_registry(side_effects: Path) -> PluginRegistry:
    """Built-ins plus: echo, light_echo, fail, flaky, sleep, block, count, bad_output,
    big_output, undo."""
    registry = PluginRegistry.with_builtins()

    @registry.plugin("light_echo", light=True)
    async def light_echo(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Its node id and the node ids of its inputs, declared light (``execution: auto``
        runs it as a local activity)."""
        out: dict[str, Any] = {"node": ctx.node_id, "from": sorted(inputs)}
        out.update(config.get("emit", {}))
        return out

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
        """Fails until attempt ``succeed_on``, which takes ``seconds`` (default 0)."""
        if ctx.attempt < int(config.get("succeed_on", 2)):
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        await asyncio.sleep(float(config.get("seconds", 0)))
        return {"attempt": ctx.attempt}

    @registry.plugin("fail_times")
    def fail_times(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Fails its first ``times`` calls, counted across attempts and runs, then returns
        how many calls it took."""
        _append(side_effects, ctx.node_id, ctx.attempt)
        calls = read_count(side_effects, ctx.node_id)
        if calls <= int(config.get("times", 1)):
            raise ConnectionError(f"call {calls} failed")
        return {"calls": calls}

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
        """Returns something that is not a plain JSON object (counts calls): ``kind`` is
        set, list, deep (nested 100 levels), huge (an integer over 64 bits) or surrogate."""
        _append(side_effects, ctx.node_id, ctx.attempt)
        kind = config.get("kind", "set")
        if kind == "deep":
            deep: dict[str, Any] = {}
            for _ in range(100):
                deep = {"inner": deep}
            return deep
        if kind == "huge":
            return {"value": 2**70}
        if kind == "surrogate":
            return {"value": "\ud800"}
        return {"value": {1, 2}} if kind == "set" else ["not", "a", "dict"]

    @registry.plugin("big_output")
    async def big_output(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Returns ``size`` bytes of text (counts calls)."""
        _append(side_effects, ctx.node_id, ctx.attempt)
        return {"blob": "x" * int(config.get("size", 3_000_000))}

    @registry.plugin("measure")
    def measure(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """The length and hash of every string it finds one level into its inputs."""
        import hashlib

        found = {}
        for key, value in inputs.items():
            for inner_key, inner in value.items() if isinstance(value, dict) else []:
                if isinstance(inner, str):
                    found[f"{key}.{inner_key}"] = {
                        "length": len(inner),
                        "sha256": hashlib.sha256(inner.encode()).hexdigest(),
                    }
        return found

    @registry.plugin("double")
    async def double(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Streaming processor: n -> n * 2 for every item of every input."""
        items = [item for batch in inputs.values() if isinstance(batch, list) for item in batch]
        return {"items": [{**item, "n": item["n"] * 2} for item in items]}

    @registry.plugin("collect")
    def collect(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        """Streaming sink: appends every item as a JSON line to <name>.jsonl (duplicates show)."""
        items = [item for batch in inputs.values() if isinstance(batch, list) for item in batch]
        time.sleep(float(config.get("delay", 0)))  # a slow sink, for back-pressure tests
        with (side_effects / f"{config.get('name', ctx.node_id)}.jsonl").open("a") as handle:
            for item in items:
                handle.write(json.dumps(item, sort_keys=True) + "\n")
        return {"written": len(items)}

    @registry.plugin("undo")
    def undo(inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext) -> dict[str, Any]:
        """A compensation: appends what it was given (node, attempt, input, output, reason) as
        a JSON line to undo.jsonl (every attempt), sleeps ``seconds``, then fails while
        ``attempt <= fail_attempts`` (``fail_attempts: -1``: always)."""
        with (side_effects / "undo.jsonl").open("a") as handle:
            handle.write(json.dumps({**inputs, "attempt": ctx.attempt}, sort_keys=True) + "\n")
        time.sleep(float(config.get("seconds", 0)))
        fail_attempts = int(config.get("fail_attempts", 0))
        if fail_attempts < 0 or ctx.attempt <= fail_attempts:
            raise RuntimeError(f"could not undo {inputs.get('node_id')} (attempt {ctx.attempt})")
        return {"undone": inputs.get("node_id")}

    @source_plugin("numbers")
    async def numbers(
        config: dict[str, Any], checkpoint: Any, ctx: PluginContext
    ) -> AsyncIterator[dict[str, Any]]:
        """Source: {"n": 0}, {"n": 1}, ... up to ``count`` (forever without), ``delay`` apart."""
        count = config.get("count")
        delay = float(config.get("delay", 0))
        n = int(checkpoint or 0)
        while count is None or n < int(count):
            if delay:
                await asyncio.sleep(delay)
            yield {"n": n}
            n += 1

    registry.add(numbers)
    registry.add(SourceSpec("bloated", _open_bloated, "A source with a checkpoint of any size."))
    registry.add(Greet())
    return registry


class Greet(PluginBase):
    """Greets the person in its ``person`` input (a typed, class-based plugin)."""

    plugin_id = "greet"
    input_ports = ("person",)
    output_ports = ("text",)

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        greeting: str
        times: int = Field(1, ge=1, le=5)

    async def run(self, inputs: dict[str, Any], config: Any, ctx: PluginContext) -> dict[str, Any]:
        name = (inputs.get("person") or {}).get("name", "world")
        return {"text": " ".join([f"{config.greeting} {name}"] * config.times)}


class _BloatedSource:
    """``count`` items ``{"n": i}``, then nothing; its checkpoint is ``checkpoint_bytes``
    characters of text, whatever it has done."""

    def __init__(self, count: int, size: int) -> None:
        self._count = count
        self._size = size
        self._next = 0

    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        if self._next < self._count:
            self._next += 1
            return [SourceItem({"n": self._next - 1}, item_id=str(self._next - 1))]
        await asyncio.sleep(max_wait)
        return []

    async def commit(self, items: list[SourceItem]) -> None:
        return None

    def checkpoint(self) -> Any:
        return "x" * self._size

    @property
    def exhausted(self) -> bool:
        return False

    async def close(self) -> None:
        return None


async def _open_bloated(config: dict[str, Any], checkpoint: Any, ctx: PluginContext) -> Source:
    return _BloatedSource(int(config.get("count", 0)), int(config["checkpoint_bytes"]))


def read_jsonl(directory: Path, name: str) -> list[dict[str, Any]]:
    """The items the ``collect`` sink wrote under ``name``."""
    path = directory / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append(directory: Path, name: str, attempt: int) -> None:
    with count_file(directory, name).open("a") as handle:
        handle.write(f"{attempt}\n")
