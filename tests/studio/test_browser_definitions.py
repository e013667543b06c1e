"""The definitions page in a real Chromium, as a user meets it: a search box that filters the
list, and unregistering a definition after a confirmation (cancelled: nothing changes; the
server's error: shown on the page)."""

from __future__ import annotations

from typing import Any

import pytest

from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode
from engine.studio import StudioServer
from tests.helpers.builders import chain
from tests.studio.browser import shot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = '[data-testid="definitions-table"] tbody tr'


async def listed(page: Any) -> list[str]:
    """The workflow ids in the list, in order."""
    testids = await page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.testid)")
    return [testid.removeprefix("definition-row-") for testid in testids]


async def register(orchestrator: AdvancedPluginOrchestrator, workflow_id: str, name: str) -> None:
    definition = chain(workflow_id, 2)
    definition.name = name
    await orchestrator.register_workflow(definition)


async def test_search_filters_the_definitions_by_id_and_name(
    page: Any, studio: StudioServer, orchestrator: AdvancedPluginOrchestrator, unique
) -> None:
    from playwright.async_api import expect

    imports, exports = unique("orders-import"), unique("orders-export")
    billing = unique("billing")
    await register(orchestrator, imports, "Nightly import")
    await register(orchestrator, exports, "Export to the warehouse")
    await register(orchestrator, billing, "Monthly invoices")
    await page.goto(f"{studio.url}/#/")
    await expect(page.locator(ROWS)).to_have_count(3)
    search = page.get_by_test_id("definitions-search")
    count = page.get_by_test_id("definitions-count")

    await search.fill("orders")
    await expect(page.locator(ROWS)).to_have_count(2)
    assert await listed(page) == sorted([imports, exports])
    await expect(count).to_have_text("2 of 3")
    await shot(page, "definitions-search")

    await search.fill("  ORDERS-EXPORT ")  # any case, spaces around ignored
    await expect(page.locator(ROWS)).to_have_count(1)
    assert await listed(page) == [exports]

    await search.fill("invoices")  # the name
    await expect(page.locator(ROWS)).to_have_count(1)
    assert await listed(page) == [billing]

    await search.fill("no such definition")
    await expect(page.locator(ROWS)).to_have_count(0)
    await expect(page.get_by_test_id("definitions-no-match")).to_contain_text("no such definition")

    await page.get_by_test_id("definitions-search-clear").click()
    await expect(search).to_have_value("")
    await expect(page.locator(ROWS)).to_have_count(3)


async def test_unregister_a_definition_after_confirming(
    page: Any,
    studio: StudioServer,
    orchestrator: AdvancedPluginOrchestrator,
    unique,
    page_errors: list[str],
) -> None:
    from playwright.async_api import expect

    keep, drop, gone = unique("keep"), unique("drop"), unique("gone")
    for workflow_id in (keep, drop, gone):
        await register(orchestrator, workflow_id, workflow_id)
    await page.goto(f"{studio.url}/#/")
    await expect(page.locator(ROWS)).to_have_count(3)
    dialog = page.get_by_test_id("confirm-dialog")

    # Cancelled: the dialog goes, the definition stays.
    await page.get_by_test_id(f"delete-definition-{drop}").click()
    await expect(dialog).to_contain_text(f"Unregister {drop}?")
    await shot(page, "definitions-confirm-unregister")
    await page.get_by_test_id("confirm-cancel").click()
    await expect(dialog).to_have_count(0)
    await expect(page.get_by_test_id(f"definition-row-{drop}")).to_be_visible()
    assert (await orchestrator.get_workflow(drop)).workflow_id == drop

    # Escape cancels too.
    await page.get_by_test_id(f"delete-definition-{drop}").click()
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_have_count(0)
    assert (await orchestrator.get_workflow(drop)).workflow_id == drop

    # Confirmed: unregistered (DELETE /api/workflows/{id}), gone from the list.
    await page.get_by_test_id(f"delete-definition-{drop}").click()
    await page.get_by_test_id("confirm-ok").click()
    await expect(page.get_by_test_id(f"definition-row-{drop}")).to_have_count(0)
    await expect(page.get_by_test_id("definitions-notice")).to_contain_text(f"Unregistered {drop}")
    assert sorted(await listed(page)) == sorted([keep, gone])
    with pytest.raises(PluginError) as raised:
        await orchestrator.get_workflow(drop)
    assert raised.value.code is PluginErrorCode.WorkflowNotFound
    assert (await orchestrator.get_workflow(keep)).workflow_id == keep

    # Unregistered elsewhere meanwhile: the server's error is on the page, the list refreshed.
    await orchestrator.unregister_workflow(gone)
    await page.get_by_test_id(f"delete-definition-{gone}").click()
    await page.get_by_test_id("confirm-ok").click()
    error = page.get_by_test_id("definitions-error")
    await expect(error).to_contain_text(f"WorkflowNotFound: workflow '{gone}' is not registered")
    await expect(page.get_by_test_id(f"definition-row-{gone}")).to_have_count(0)
    assert await listed(page) == [keep]
    await shot(page, "definitions-unregister-error")
    # The browser logs the refused request; nothing else went wrong.
    assert [e for e in page_errors if "404" not in e] == []
    assert len(page_errors) == 1, page_errors
    page_errors.clear()


async def test_unregister_from_the_definitions_own_page(
    page: Any, studio: StudioServer, orchestrator: AdvancedPluginOrchestrator, unique
) -> None:
    from playwright.async_api import expect

    workflow_id = unique("own-page")
    await register(orchestrator, workflow_id, workflow_id)
    await page.goto(f"{studio.url}/#/workflows/{workflow_id}")
    await page.get_by_test_id("unregister-button").click()
    await page.get_by_test_id("confirm-cancel").click()
    await expect(page.get_by_test_id("confirm-dialog")).to_have_count(0)
    assert (await orchestrator.get_workflow(workflow_id)).workflow_id == workflow_id

    await page.get_by_test_id("unregister-button").click()
    await page.get_by_test_id("confirm-ok").click()
    # Back on the list, which this test's task queue leaves empty.
    await expect(page.get_by_text("No definitions are registered")).to_be_visible()
    with pytest.raises(PluginError):
        await orchestrator.get_workflow(workflow_id)
