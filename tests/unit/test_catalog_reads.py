"""engine.client.catalog_reads: when a start reads the catalog ahead, beside its definition."""

from __future__ import annotations

import asyncio

from engine.client.catalog_reads import StartCatalogReads
from engine.runtime.contracts import PluginInfo


class _Catalog:
    """A catalog read that counts its calls and answers when released."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0
        self.release = asyncio.Event()

    async def __call__(self) -> list[PluginInfo]:
        self.calls += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return [PluginInfo(plugin_id="light", light=True)]


async def test_auto_definitions_read_ahead_and_others_stop_reading() -> None:
    catalog = _Catalog()
    reads = StartCatalogReads(catalog)
    catalog.release.set()
    # First start of a definition: read ahead (it may use auto).
    async with reads.for_start("auto") as start:
        start.needed(True)
        assert [info.plugin_id for info in await start.read()] == ["light"]
    assert catalog.calls == 1
    async with reads.for_start("auto") as start:
        await asyncio.sleep(0)
        assert catalog.calls == 2  # begun before the definition is known
        start.needed(True)
        await start.read()
    assert catalog.calls == 2  # the read begun ahead answered
    # A definition without auto: its first start's read ahead goes unused, then none.
    async with reads.for_start("plain") as start:
        await asyncio.sleep(0)
        start.needed(False)
    async with reads.for_start("plain") as start:
        await asyncio.sleep(0)
        start.needed(False)
    assert catalog.calls == 3


async def test_an_unused_read_ahead_is_cancelled() -> None:
    catalog = _Catalog()
    reads = StartCatalogReads(catalog)
    async with reads.for_start("plain") as start:
        await asyncio.sleep(0)  # the read ahead is under way
        start.needed(False)
    assert (catalog.calls, catalog.cancelled) == (1, 1)
    # A definition that starts using auto reads the catalog after its definition.
    catalog.release.set()
    async with reads.for_start("plain") as start:
        await asyncio.sleep(0)
        assert catalog.calls == 1
        start.needed(True)
        await start.read()
    assert catalog.calls == 2
