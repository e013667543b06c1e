"""Temporal's default workflow lists (Temporal UI's, `temporal workflow list`) show
executions only: registry entities and catalogs carry TemporalNamespaceDivision."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer, free_port, temporal_cli
from engine.hosting.worker import create_worker
from engine.runtime.contracts import catalog_entity_id, definition_entity_id
from plugins import PluginRegistry
from tests.helpers.builders import chain

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(name="server_with_ui", scope="module")
def fixture_server_with_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    server = DevServer(tmp_path_factory.mktemp("ui-server"), port=free_port(), ui_port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_default_lists_show_executions_only(
    server_with_ui: DevServer, task_queue: str, unique, registry: PluginRegistry
) -> None:
    client = await connect(server_with_ui.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    first, second = chain(unique("listed-a"), 2), chain(unique("listed-b"), 1)
    async with create_worker(client, task_queue=task_queue, plugins=registry):
        await orchestrator.register_workflow(first)
        await orchestrator.register_workflow(second)
        execution_id = await orchestrator.execute_workflow(first.workflow_id)
        context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    assert context.status is WorkflowExecutionStatus.Completed
    entities = {
        definition_entity_id(first.workflow_id, task_queue),
        definition_entity_id(second.workflow_id, task_queue),
        catalog_entity_id(task_queue),
    }

    # Visibility lags a moment behind writes.
    async def default_list() -> set[str]:
        return {execution.id async for execution in client.list_workflows("")}

    listed: set[str] = set()
    for _ in range(100):
        listed = await default_list()
        if execution_id in listed:
            break
        await asyncio.sleep(0.1)
    assert execution_id in listed
    assert not listed & entities, listed

    # The registry still lists its definitions, and the entities are one query away.
    assert {first.workflow_id, second.workflow_id} <= set(
        await orchestrator.get_registered_workflows()
    )
    divided = {
        execution.id
        async for execution in client.list_workflows(
            "TemporalNamespaceDivision = 'plugin-orchestrator'"
        )
    }
    assert entities <= divided

    # As a user types it.
    printed = await asyncio.to_thread(
        subprocess.run,
        [temporal_cli(), "workflow", "list", "--address", server_with_ui.address],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert execution_id in printed.stdout
    for entity in entities:
        assert entity not in printed.stdout

    # Temporal UI's default workflow list, in a browser.
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"this test needs Chromium in CI (no {CHROMIUM})")
        pytest.skip(f"no Chromium at {CHROMIUM} for Temporal UI's list")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{server_with_ui.ui_url}/namespaces/default/workflows")
            await page.get_by_text(execution_id).first.wait_for(timeout=30_000)
            text = await page.inner_text("body")
        finally:
            await browser.close()
    for entity in entities:
        assert entity not in text
    assert "PluginWorkflowDefinition" not in text
    assert "PluginCatalog" not in text
