"""Reading registered definitions for one client: shared reads and checked copies.

Every start of an execution reads the current definition from its registry entity
(:class:`engine.temporal.registry.PluginWorkflowDefinition`). A query goes through a
worker, which makes it several times slower than a ``describe``, which the server answers
alone. The entity shows its current version in its memo (patch ``definition-version-memo``),
so a reader that holds a copy of the definition checks with a ``describe`` that its copy is
still current and asks the entity only when it is not:

* a copy is keyed by the entity's run id and the version; a version names one content
  within an entity's runs (every change makes a new version, continue-as-new keeps
  counting), and a definition registered again after ``unregister`` is a new entity with a
  new run id, so a copy is never taken for another content;
* without a copy, the ``describe`` and the query run at once (no slower than the query
  alone); an entity from before the patch has no version in its memo, and its definition is
  then read with a query every time, as before;
* concurrent reads of one definition share one read (fewer queries on the entity, and none
  left unanswered by a worker without a workflow cache, whose SDK drops queries buffered
  behind another task); each caller gets its own copy, decoded from the JSON the read kept;
* a change made through this client drops its copy (:meth:`DefinitionReads.forget`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError

from engine.language.models import PluginWorkflow
from engine.temporal.registry import VERSION_MEMO_KEY

# Copies kept at most (one per definition id; the oldest go first).
MAX_COPIES = 1000


@dataclass(frozen=True)
class _Copy:
    run_id: str
    version: int
    text: str  # the definition's JSON


class DefinitionReads:
    """The definitions one client reads (see the module docstring)."""

    def __init__(
        self,
        client: Callable[[], Client],
        entity_id: Callable[[str], str],
        query: Callable[[str], Awaitable[PluginWorkflow]],
        timeout: timedelta,
    ) -> None:
        """``client`` gives the owner's current client (called each time, never kept: a
        closed owner must drop its client so the SDK runtime can shut down);
        ``entity_id`` names a definition's registry entity; ``query`` asks the entity for
        the definition (and raises the engine's errors for one that is not registered);
        ``timeout`` bounds each ``describe``."""
        self._client = client
        self._timeout = timeout
        self._entity_id = entity_id
        self._query = query
        self._copies: dict[str, _Copy] = {}
        self._reads: dict[str, asyncio.Future[str]] = {}

    async def read(self, workflow_id: str) -> PluginWorkflow:
        """The current definition of ``workflow_id``: a copy of its own for the caller."""
        reading = self._reads.get(workflow_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read(workflow_id))
            self._reads[workflow_id] = reading
            reading.add_done_callback(functools.partial(self._read_done, workflow_id))
        text = await asyncio.shield(reading)
        return PluginWorkflow.model_validate_json(text)

    def kept(self, workflow_id: str) -> int | None:
        """The version of the copy kept of ``workflow_id``, if any."""
        copy = self._copies.get(workflow_id)
        return copy.version if copy is not None else None

    def forget(self, workflow_id: str) -> None:
        """The definition changed (or was registered, or unregistered) through this client:
        drop its copy, and let reads from now on start their own (one under way may answer
        with the version before the change)."""
        self._copies.pop(workflow_id, None)
        self._reads.pop(workflow_id, None)

    async def _read(self, workflow_id: str) -> str:
        copy = self._copies.get(workflow_id)
        if copy is not None:
            current = await _current(await self._describe(workflow_id))
            if current == (copy.run_id, copy.version):
                return copy.text
            self._copies.pop(workflow_id, None)
            definition = await self._query(workflow_id)
            return self._keep(workflow_id, current, definition)
        describing = asyncio.ensure_future(self._describe(workflow_id))
        try:
            definition = await self._query(workflow_id)
        except BaseException:
            describing.cancel()
            with contextlib.suppress(BaseException):
                await describing
            raise
        return self._keep(workflow_id, await _current(await describing), definition)

    async def _describe(self, workflow_id: str) -> WorkflowExecutionDescription | None:
        """The entity's description, or None where it cannot be had (the query then
        answers, or says what is wrong)."""
        try:
            handle = self._client().get_workflow_handle(self._entity_id(workflow_id))
            return await handle.describe(rpc_timeout=self._timeout)
        except RPCError:
            return None

    def _keep(
        self, workflow_id: str, current: tuple[str, int] | None, definition: PluginWorkflow
    ) -> str:
        text = definition.model_dump_json()
        # Only a copy whose version the memo showed: a change between the describe and the
        # query would otherwise key the older version's run with the newer content (which
        # would still be right, but the next check could not tell).
        if current is not None and current[1] == definition.version:
            self._copies.pop(workflow_id, None)
            self._copies[workflow_id] = _Copy(current[0], current[1], text)
            while len(self._copies) > MAX_COPIES:
                del self._copies[next(iter(self._copies))]
        return text

    def _read_done(self, workflow_id: str, reading: asyncio.Future[str]) -> None:
        if self._reads.get(workflow_id) is reading:
            del self._reads[workflow_id]
        if not reading.cancelled():
            reading.exception()  # retrieved here: every caller may have been cancelled


async def _current(description: WorkflowExecutionDescription | None) -> tuple[str, int] | None:
    """(run id, version) of a running entity whose memo shows its version, else None."""
    if description is None or description.status is not WorkflowExecutionStatus.RUNNING:
        return None
    try:
        version: Any = await description.memo_value(VERSION_MEMO_KEY, None)
    except Exception:  # a memo this engine did not write: no copy is checked against it
        return None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return None
    return description.run_id, version
