"""Shared fixtures: one real Temporal dev server per test session, workers per test.

The server is the same binary and settings as the embedded default (``engine.hosting.devserver``),
on free ports with its SQLite file in a temporary directory. Nothing about Temporal is mocked.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.worker import Worker

from engine import AdvancedPluginOrchestrator
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import create_worker
from plugins import PluginRegistry
from tests.helpers.plugins import test_registry


@pytest.fixture(name="blob_store", scope="session", autouse=True)
def fixture_blob_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Large outputs of every test (and worker processes it starts) go to a temporary store."""
    root = tmp_path_factory.mktemp("blobs")
    previous = os.environ.get("ORCHESTRATOR_BLOB_STORE")
    os.environ["ORCHESTRATOR_BLOB_STORE"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("ORCHESTRATOR_BLOB_STORE", None)
    else:
        os.environ["ORCHESTRATOR_BLOB_STORE"] = previous


@pytest.fixture(name="file_roots", scope="session", autouse=True)
def fixture_file_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """The suite's workers (in-process, and worker processes inheriting the environment) may
    use files in the repository and the session's temporary directories, as an operator would
    allow them in ORCHESTRATOR_FILE_ROOTS; the data directory is a temporary one too, so
    nothing is written to the user's."""
    base = tmp_path_factory.getbasetemp()
    roots = [Path(__file__).resolve().parents[1], base]
    settings = {
        "ORCHESTRATOR_FILE_ROOTS": os.pathsep.join(str(root) for root in roots),
        "ORCHESTRATOR_DATA_DIR": str(base / "data"),
    }
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    yield roots
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(name="dev_server", scope="session")
def fixture_dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A durable, tuned Temporal dev server for the whole session."""
    server = DevServer(tmp_path_factory.mktemp("temporal"), port=free_port(), ui_port=0)
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(name="client", loop_scope="session", scope="session")
async def fixture_client(dev_server: DevServer) -> Client:
    """A client connected to the session's dev server."""
    return await connect(dev_server.address)


@pytest.fixture(name="task_queue")
def fixture_task_queue() -> str:
    """A task queue of its own for each test."""
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture(name="unique")
def fixture_unique() -> Callable[[str], str]:
    """Makes ids unique per test (the registry is shared by the whole namespace)."""
    suffix = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{suffix}"


@pytest.fixture(name="orchestrator")
def fixture_orchestrator(client: Client, task_queue: str) -> AdvancedPluginOrchestrator:
    """An orchestrator on the test's task queue."""
    return AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)


@pytest.fixture(name="registry")
def fixture_registry(tmp_path: Path) -> PluginRegistry:
    """Built-in plugins plus the test plugins (see tests/helpers/plugins.py)."""
    return test_registry(tmp_path)


@pytest_asyncio.fixture(name="worker", loop_scope="session")
async def fixture_worker(
    client: Client, task_queue: str, registry: PluginRegistry
) -> AsyncIterator[Worker]:
    """A running in-process worker on the test's task queue. The workflow cache is off, so
    every workflow task replays the history: non-determinism fails tests at once."""
    worker = create_worker(
        client,
        task_queue=task_queue,
        plugins=registry,
        max_cached_workflows=0,
        graceful_shutdown=5.0,
    )
    async with worker:
        yield worker
