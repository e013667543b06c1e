"""Fixtures of the studio tests: the real app over the session's dev server and a worker."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.worker import Worker

from engine import AdvancedPluginOrchestrator
from engine.hosting.worker import create_worker
from engine.studio import StudioServer, create_app
from plugins import PluginRegistry
from tests.studio.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    browser_missing,
)
from tests.studio.browser import UI_URL as BROWSER_UI_URL

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


@pytest.fixture(name="chromium", scope="module")
def fixture_chromium() -> str:
    """The browser binary; skipped without one, except in CI where it must be there."""
    reason = browser_missing()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests need Chromium in CI: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest_asyncio.fixture(name="studio", loop_scope="session")
async def fixture_studio(
    orchestrator: AdvancedPluginOrchestrator, worker: object
) -> AsyncIterator[StudioServer]:
    """The real studio server on a free loopback port, in this event loop."""
    server = StudioServer(orchestrator, "127.0.0.1", 0, ui_url=BROWSER_UI_URL)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(name="page_errors")
def fixture_page_errors() -> list[str]:
    """Errors of the page and its console; a test that provokes one removes it after checking
    it, any other fails the test."""
    return []


@pytest_asyncio.fixture(name="page", loop_scope="session")
async def fixture_page(
    chromium: str, studio: StudioServer, tmp_path: Path, page_errors: list[str]
) -> AsyncIterator[Any]:
    """A fresh Chromium (own user-data dir) and its page, closed before the studio stops;
    errors in the page or its console fail the test (see ``page_errors``)."""
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors = page_errors
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 900},
            accept_downloads=True,
        )
        page = context.pages[0] if context.pages else await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda message: (
                errors.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        try:
            yield page
        finally:
            await context.close()
    assert errors == [], errors
