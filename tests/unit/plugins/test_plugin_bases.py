"""The plugin interfaces the built-ins use: ``PluginBase`` (sync or async ``run`` receiving
the validated model), ``source_plugin(..., passes_model=True)`` and ``SourceBase``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from engine.base.errors import PluginError, PluginErrorCode
from plugins import (
    PluginBase,
    PluginContext,
    Source,
    SourceBase,
    SourceItem,
    source_plugin,
)


def make_ctx() -> PluginContext:
    return PluginContext(
        execution_id="e", workflow_id="w", node_id="n", plugin_id="p", attempt=1,
        idempotency_key="k",
    )  # fmt: skip


class CountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    n: int = Field(ge=0)
    label: str = "item"


class Shout(PluginBase):
    """Upper-cases input ``text`` (a synchronous run).

    Only the first paragraph is the description."""

    plugin_id = "shout"
    Config = CountConfig

    def run(
        self, inputs: dict[str, Any], config: CountConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        assert isinstance(config, CountConfig)
        return {"text": inputs["text"].upper() * config.n, "label": config.label}


def test_a_synchronous_run_receives_the_model() -> None:
    plugin = Shout().as_plugin()
    assert not plugin.is_async  # the worker runs it in its thread pool
    assert plugin.description == "Upper-cases input ``text`` (a synchronous run)."
    checked = plugin.check_config({"n": 2, "workflow_wide": True})
    assert checked == CountConfig(n=2)
    assert plugin.function({"text": "a"}, checked, make_ctx()) == {"text": "AA", "label": "item"}
    with pytest.raises(PluginError) as refused:
        plugin.check_config({"n": -1})
    assert refused.value.code is PluginErrorCode.InvalidConfiguration
    assert refused.value.message.startswith("configuration of plugin 'shout': n: ")


@source_plugin("counted", config=CountConfig, passes_model=True)
async def counted(
    config: CountConfig, checkpoint: Any, ctx: PluginContext
) -> AsyncIterator[dict[str, Any]]:
    """Items ``{label: i}`` for i below ``n``."""
    assert isinstance(config, CountConfig)
    for i in range(checkpoint or 0, config.n):
        yield {config.label: i}


class _Listed(SourceBase):
    def __init__(self, values: list[dict[str, Any]]) -> None:
        self.values = values
        self.committed: list[str] = []
        self.closed = False

    async def read(self, max_items: int, max_wait: float) -> list[SourceItem]:
        batch, self.values = self.values[:max_items], self.values[max_items:]
        if not self.values:
            self.mark_exhausted()
        return [SourceItem(value=v, item_id=str(v)) for v in batch]

    async def commit(self, items: list[SourceItem]) -> None:
        self.committed += [item.item_id for item in items]

    async def close(self) -> None:
        self.closed = True


@source_plugin("listed", config=CountConfig, passes_model=True)
async def open_listed(config: CountConfig, checkpoint: Any, ctx: PluginContext) -> Source:
    """``n`` items from a list."""
    return _Listed([{config.label: i} for i in range(config.n)])


async def test_a_generator_source_receives_the_model() -> None:
    assert counted.config_model is CountConfig
    assert counted.replays
    assert counted.description == "Items ``{label: i}`` for i below ``n``."
    source = await counted.open({"n": 3, "label": "x", "other": 1}, 1, make_ctx())
    try:
        assert [item.value for item in await source.read(10, 1.0)] == [{"x": 1}, {"x": 2}]
    finally:
        await source.close()

    refused = await counted.open({"n": "3"}, None, make_ctx())  # a generator starts on read
    try:
        with pytest.raises(PluginError) as info:
            await refused.read(10, 1.0)
    finally:
        await refused.close()
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert info.value.message.startswith("configuration of source 'counted': n: ")


async def test_a_factory_source_receives_the_model_and_the_base_defaults() -> None:
    with pytest.raises(PluginError) as info:
        await open_listed.open({"label": "x"}, None, make_ctx())
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert info.value.message == "configuration of source 'listed': n: Field required"

    source = await open_listed.open({"n": 3}, None, make_ctx())
    assert isinstance(source, Source)
    assert isinstance(source, _Listed)
    assert source.checkpoint() is None
    assert not source.exhausted
    first = await source.read(2, 0.0)
    await source.commit(first)
    assert not source.exhausted
    await source.read(2, 0.0)
    assert source.exhausted
    assert source.committed == ["{'item': 0}", "{'item': 1}"]
    await source.close()
    assert source.closed


def test_passes_model_needs_a_model() -> None:
    with pytest.raises(TypeError, match="needs a config model"):
        source_plugin("nothing", passes_model=True)
