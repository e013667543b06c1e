"""Fixtures of the studio tests: the real app over the session's dev server and a worker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.worker import Worker

from engine import AdvancedPluginOrchestrator
from engine.studio import create_app
from engine.worker import create_worker
from plugins import PluginRegistry

UI_URL = "http://temporal-ui.test:8233"


@pytest_asyncio.fixture(name="worker", loop_scope="session")
async def fixture_worker(
    client: Client, task_queue: str, registry: PluginRegistry
) -> AsyncIterator[Worker]:
    """A worker with the workflow cache on, as in production: the studio's pages query one
    execution from several requests at once (status, events, the live stream), and with the
    cache off temporalio 1.35 leaves some concurrent queries of one workflow unanswered
    (a 503 in the browser's console). Other suites keep the cache off to replay every task."""
    worker = create_worker(client, task_queue=task_queue, plugins=registry, graceful_shutdown=5.0)
    async with worker:
        yield worker


@pytest_asyncio.fixture(name="app", loop_scope="session")
async def fixture_app(orchestrator: AdvancedPluginOrchestrator) -> FastAPI:
    """The studio's app on the test's task queue, with a Temporal UI URL."""
    return create_app(orchestrator, ui_url=UI_URL)


@pytest_asyncio.fixture(name="api", loop_scope="session")
async def fixture_api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process (ASGI), JSON by default."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1:8080", timeout=60.0
    ) as client:
        yield client
