"""Schedules in a real Chromium: create one from a definition's page, find it on the
Schedules page, run it now and follow the run to its execution, pause, resume and delete it;
a bad cron is named in the dialog."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine import AdvancedPluginOrchestrator
from engine.studio import StudioServer
from tests.helpers.builders import chain
from tests.helpers.waiting import eventually
from tests.studio.browser import shot

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_schedule_a_definition_and_run_it_now(
    page: Any,
    studio: StudioServer,
    orchestrator: AdvancedPluginOrchestrator,
    unique,
    page_errors: list[str],
) -> None:
    from playwright.async_api import expect

    workflow_id = unique("nightly")
    await orchestrator.register_workflow(chain(workflow_id, 2))
    await page.goto(f"{studio.url}/#/workflows/{workflow_id}")
    panel = page.get_by_test_id("definition-schedules")
    await expect(panel).to_contain_text("Not scheduled.")

    # A bad cron: the server's answer is shown in the dialog.
    await page.get_by_test_id("add-schedule-button").click()
    await page.get_by_test_id("schedule-kind-cron").check()
    await page.get_by_test_id("schedule-cron").fill("61 * * * *")
    await page.get_by_test_id("schedule-create-button").click()
    await expect(page.get_by_test_id("schedule-error")).to_contain_text("InvalidInput")
    page_errors.clear()  # the browser logs the 422 answer

    await page.get_by_test_id("schedule-cron").fill("30 5 * * *")
    await page.get_by_test_id("schedule-time-zone").fill("Europe/Paris")
    await page.get_by_test_id("schedule-input").fill('{"from": "browser"}')
    await page.get_by_test_id("schedule-id").fill(f"{workflow_id}-daily")
    await page.get_by_test_id("schedule-create-button").click()
    await expect(page.get_by_test_id("schedule-dialog")).to_have_count(0)
    schedule_id = f"{workflow_id}-daily"
    row = panel.locator(f'[data-schedule-id="{schedule_id}"]')
    await expect(row).to_contain_text("cron 30 5 * * * (Europe/Paris)")

    # The Schedules page lists it (visibility may lag a moment: it polls).
    await page.get_by_test_id("nav-schedules").click()
    await expect(
        page.locator(f'[data-testid="schedule-row"][data-schedule-id="{schedule_id}"]')
    ).to_be_visible()
    await page.locator(f'[data-schedule-id="{schedule_id}"] a').first.click()
    await expect(page.get_by_test_id("schedule-when")).to_have_text(
        "cron 30 5 * * * (Europe/Paris)"
    )
    await expect(page.get_by_test_id("schedule-state")).to_have_text("active")

    await page.get_by_test_id("schedule-trigger").click()
    run = page.get_by_test_id("schedule-run").first
    await expect(run).to_be_visible()
    await shot(page, "schedule-page")
    details = await orchestrator.describe_schedule(schedule_id)
    execution_id = details.recent_runs[0].execution_id
    context = await orchestrator.wait_for_completion(execution_id, timeout=30)
    assert context.status.value == "completed"
    await run.locator("a").click()
    # The execution's page (the id's ':' are escaped in the address).
    await expect(page).to_have_url(re.compile(re.escape(execution_id.split("T")[0])))

    await page.go_back()
    await page.get_by_test_id("schedule-pause").click()
    await expect(page.get_by_test_id("schedule-state")).to_have_text("paused")
    await expect(page.get_by_test_id("schedule-next")).to_contain_text("none while paused")
    await page.get_by_test_id("schedule-resume").click()
    await expect(page.get_by_test_id("schedule-state")).to_have_text("active")

    await page.get_by_test_id("schedule-delete").click()
    await page.get_by_test_id("confirm-ok").click()
    await expect(page).to_have_url(re.compile(r"#/schedules$"))
    await eventually(
        lambda: orchestrator.list_schedules(workflow_id), lambda rows: rows == [], timeout=15
    )
