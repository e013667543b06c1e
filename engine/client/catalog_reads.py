"""The plugin catalog read of a start, begun beside the definition read.

A start whose definition (or a sub-workflow's) has a node with ``execution: auto`` reads
the catalog for the light plugins (:func:`engine.temporal.catalog.light_plugins`); that is a
``describe`` of the catalog entity, a round trip of its own after the definition read. It
runs at the same time as the definition read instead when the last start of that
definition through this client needed it, or on a definition's first start here (a
definition that turns out not to use ``auto`` costs one unneeded ``describe``, once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from engine.runtime.contracts import PluginInfo

# Definitions whose last start is remembered (the oldest go first).
MAX_REMEMBERED = 1000

Read = Callable[[], Awaitable[list[PluginInfo]]]


class StartCatalogReads:
    """Catalog reads of one client's starts (see the module docstring)."""

    def __init__(self, read: Read) -> None:
        self._read = read
        self._needed: dict[str, bool] = {}  # definition id -> its last start read the catalog

    @contextlib.asynccontextmanager
    async def for_start(self, workflow_id: str) -> AsyncIterator[StartCatalogRead]:
        """The catalog read of one start of ``workflow_id`` (a read begun ahead that the
        start did not use is cancelled when the block ends)."""
        ahead = asyncio.ensure_future(self._read()) if self._needed.get(workflow_id, True) else None
        start = StartCatalogRead(self, workflow_id, ahead)
        try:
            yield start
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()
            if ahead is not None:
                with contextlib.suppress(BaseException):
                    await ahead  # retrieved: its outcome matters only to read()

    def _remember(self, workflow_id: str, needed: bool) -> None:
        self._needed.pop(workflow_id, None)
        self._needed[workflow_id] = needed
        while len(self._needed) > MAX_REMEMBERED:
            del self._needed[next(iter(self._needed))]


class StartCatalogRead:
    """The catalog as one start reads it."""

    def __init__(
        self,
        reads: StartCatalogReads,
        workflow_id: str,
        ahead: asyncio.Future[list[PluginInfo]] | None,
    ) -> None:
        self._reads = reads
        self._workflow_id = workflow_id
        self._ahead = ahead

    def needed(self, auto: bool) -> None:
        """Whether this start needs the catalog (remembered for the next start)."""
        self._reads._remember(self._workflow_id, auto)

    async def read(self) -> list[PluginInfo]:
        """The catalog: the read begun ahead, or one begun now."""
        if self._ahead is not None:
            return await asyncio.shield(self._ahead)
        return await self._reads._read()
