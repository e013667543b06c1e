"""A second dev server whose history limit suggests continue-as-new after 40 events, so
long-running executions cross several run boundaries within a test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client

from engine import AdvancedPluginOrchestrator
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from engine.hosting.worker import create_worker
from tests.helpers.plugins import test_registry
from tests.helpers.servers import configured_server


@pytest.fixture(name="short_history_server", scope="module")
def fixture_short_history_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A dev server that suggests continue-as-new after 40 history events."""
    limits = {"limit.historyCount.suggestContinueAsNew": 40}
    with configured_server(tmp_path_factory.mktemp("temporal-short"), **limits) as server:
        yield server


@pytest_asyncio.fixture(name="short_orchestrator", loop_scope="session")
async def fixture_short_orchestrator(
    short_history_server: DevServer, task_queue: str, tmp_path: Path
) -> AsyncIterator[AdvancedPluginOrchestrator]:
    """An orchestrator and a worker (cache off) on the short-history server."""
    client: Client = await connect(short_history_server.address)
    async with create_worker(
        client, task_queue=task_queue, plugins=test_registry(tmp_path), max_cached_workflows=0
    ):
        yield AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)
