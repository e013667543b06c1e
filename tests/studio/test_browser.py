"""The studio in a real browser: design, validate, save and run a definition; watch it live;
pause and resume a run from the UI.

The studio server (uvicorn) runs in the test's event loop over the session's dev server, with
an in-process worker that has the test plugins. Chromium is Debian's (``/usr/bin/chromium``),
driven by Playwright; nothing is downloaded. Without Chromium the tests are skipped, except
in CI (``CI=true``), where that is a failure. Screenshots go to ``tests/artifacts/studio/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine import (
    AdvancedPluginOrchestrator,
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowNodeType,
)
from engine.studio import StudioServer
from tests.helpers.builders import edge, node, workflow
from tests.helpers.plugins import read_count
from tests.helpers.waiting import eventually
from tests.studio.browser import UI_URL, shot

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def drag(page: Any, source: str, target: str) -> None:
    """Drag with the mouse, in steps, as a person draws a connection."""
    start = await page.get_by_test_id(source).bounding_box()
    end = await page.get_by_test_id(target).bounding_box()
    assert start is not None, source
    assert end is not None, target
    await page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=12)
    await page.mouse.up()


async def add_node(page: Any, plugin: str, node_id: str, name: str, node_type: str) -> None:
    await page.get_by_test_id("add-node-plugin-select").select_option(plugin)
    await page.get_by_test_id("add-node-id-input").fill(node_id)
    await page.get_by_test_id("add-node-name-input").fill(name)
    await page.get_by_test_id("add-node-type-select").select_option(node_type)
    await page.get_by_test_id("add-node-button").click()
    await page.get_by_test_id(f"node-{node_id}").wait_for()
    await page.wait_for_timeout(400)  # the canvas fits the view to the new node (animated)


async def validation_state(page: Any, state: str) -> None:
    await page.locator(f'[data-testid="validation-status"][data-state="{state}"]').wait_for()


async def test_design_validate_save_and_run(
    page: Any, studio: StudioServer, orchestrator: AdvancedPluginOrchestrator, unique
) -> None:
    from playwright.async_api import expect

    workflow_id = unique("designed")
    await page.goto(f"{studio.url}/#/")
    await page.get_by_test_id("new-definition-button").click()
    await page.get_by_test_id("workflow-id-input").fill(workflow_id)
    await page.get_by_test_id("workflow-name-input").fill("Designed in the browser")

    # Three nodes from the catalog: a source, the typed 'greet' plugin, a sink.
    await add_node(page, "echo", "who", "Who", "source")
    await page.get_by_test_id("config-json").fill(json.dumps({"emit": {"name": "Ada"}}))
    await add_node(page, "greet", "hello", "Say hello", "processor")
    await add_node(page, "echo", "done", "Done", "sink")
    await expect(page.get_by_test_id("node-who")).to_have_attribute("data-type", "source")
    await expect(page.get_by_test_id("node-done")).to_have_attribute("data-type", "sink")
    # 'greet' declares its ports: they are handles.
    await expect(page.get_by_test_id("handle-in-hello-person")).to_be_visible()
    await expect(page.get_by_test_id("handle-out-hello-text")).to_be_visible()

    # Connect them by drawing: who -> hello.person, hello.text -> done; then lay it out.
    await drag(page, "handle-out-who", "handle-in-hello-person")
    await expect(page.get_by_test_id("edge-0")).to_be_attached()
    await drag(page, "handle-out-hello-text", "handle-in-done")
    await expect(page.get_by_test_id("edge-1")).to_be_attached()
    await page.get_by_test_id("layout-button").click()
    await page.wait_for_timeout(400)  # the fit-view animation

    # 'greeting' is required by greet's schema: the engine says so, naming the node.
    await validation_state(page, "invalid")
    problem = page.get_by_test_id("problem").filter(has_text="'greeting' is a required property")
    await expect(problem).to_have_count(1)
    await expect(problem).to_contain_text("node 'hello'")
    await page.get_by_test_id("node-hello").click()
    await expect(page.get_by_test_id("node-problems")).to_contain_text("greeting")
    await shot(page, "01-designer-invalid")

    # Fill it in through the form generated from the schema.
    await page.get_by_test_id("config-field-greeting").fill("Hello")
    await page.get_by_test_id("config-field-times").fill("2")
    await validation_state(page, "valid")

    # A Control connection with a condition that does not compile: refused, then removed.
    await page.get_by_test_id("connection-type-select").select_option("control")
    await drag(page, "handle-out-who", "handle-in-done")
    await expect(page.get_by_test_id("edge-panel")).to_be_visible()
    await page.get_by_test_id("edge-condition-input").fill("name ==")
    await validation_state(page, "invalid")
    await expect(page.get_by_test_id("edge-problems")).to_contain_text("condition")
    await expect(page.get_by_test_id("edge-2")).to_have_attribute("data-connection-type", "control")
    await shot(page, "02-designer-bad-condition")
    await page.get_by_test_id("delete-edge-button").click()
    await validation_state(page, "valid")
    await page.get_by_test_id("node-who").click()  # nothing else selected for the picture
    await shot(page, "03-designer-valid")

    await page.get_by_test_id("save-button").click()
    await expect(page.get_by_test_id("save-status")).to_have_attribute("data-ok", "true")
    await expect(page.get_by_test_id("save-status")).to_contain_text("version 1")

    stored = await orchestrator.get_workflow(workflow_id)
    assert stored.name == "Designed in the browser"
    assert [(n.node_id, n.plugin_id, n.node_type.value) for n in stored.nodes] == [
        ("who", "echo", "source"),
        ("hello", "greet", "processor"),
        ("done", "echo", "sink"),
    ]
    assert stored.node("hello").configuration == {"greeting": "Hello", "times": 2}  # type: ignore[union-attr]
    assert [
        (c.source_node, c.source_port, c.target_node, c.target_port, c.connection_type.value)
        for c in stored.connections
    ] == [("who", "", "hello", "person", "data_flow"), ("hello", "text", "done", "", "data_flow")]
    for stored_node in stored.nodes:
        position = stored_node.ui_properties["position"]
        assert isinstance(position["x"], int | float)
        assert isinstance(position["y"], int | float)

    # Run it from the UI and watch it complete, live.
    await page.get_by_test_id("run-button").click()
    await page.get_by_test_id("run-input").fill(json.dumps({"requested_by": "browser"}))
    await page.get_by_test_id("run-start-button").click()
    await expect(page.get_by_test_id("execution-id")).to_contain_text(f"{workflow_id}/run-")
    done = page.get_by_test_id("node-done")
    await expect(done).to_have_attribute("data-status", "completed")
    await expect(page.get_by_test_id("execution-status")).to_have_attribute(
        "data-status", "completed"
    )
    await expect(page.get_by_test_id("node-who")).to_have_attribute("data-status", "completed")
    await expect(page.get_by_test_id("progress-bar")).to_have_attribute("data-progress", "1")
    link = await page.get_by_test_id("temporal-ui-link").get_attribute("href")
    assert link is not None
    assert link.startswith(f"{UI_URL}/namespaces/default/workflows/{workflow_id}%2Frun-")
    await page.get_by_test_id("node-hello").click()
    await expect(page.get_by_test_id("node-result")).to_contain_text("Hello Ada Hello Ada")
    await expect(page.get_by_test_id("node-input")).to_contain_text('"person"')
    await expect(page.get_by_test_id("event-log")).to_contain_text("workflow_completed")
    await shot(page, "04-monitor-completed")

    # The executions list shows it, filtered by definition.
    await page.goto(f"{studio.url}/#/executions?workflow_id={workflow_id}")
    row = page.get_by_test_id("execution-row")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-status", "completed")
    await shot(page, "05-executions")


async def test_pause_and_resume_from_the_monitor(
    page: Any,
    studio: StudioServer,
    orchestrator: AdvancedPluginOrchestrator,
    unique,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    workflow_id = unique("slow")
    definition: PluginWorkflow = workflow(
        workflow_id,
        [node("slow", "sleep", seconds=5), node("next", "sleep", seconds=0.2), node("last")],
        [edge("slow", "next"), edge("next", "last")],
        mode=WorkflowExecutionMode.Sequential,
    )
    definition.nodes[0].node_type = WorkflowNodeType.Source
    await orchestrator.register_workflow(definition)

    await page.goto(f"{studio.url}/#/")
    await page.get_by_test_id(f"run-definition-{workflow_id}").click()
    await page.get_by_test_id("run-start-button").click()
    slow = page.get_by_test_id("node-slow")
    await expect(slow).to_have_attribute("data-status", "running")
    await expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    await shot(page, "06-monitor-running")

    await page.get_by_test_id("pause-button").click()
    status = page.get_by_test_id("execution-status")
    await expect(status).to_have_attribute("data-status", "paused")
    await expect(page.get_by_test_id("resume-button")).to_be_visible()
    await expect(page.get_by_test_id("pause-button")).to_have_count(0)
    # The running node finishes; the next one does not start while paused.
    await expect(slow).to_have_attribute("data-status", "completed", timeout=20_000)
    await page.wait_for_timeout(1500)
    await expect(page.get_by_test_id("node-next")).to_have_attribute("data-status", "pending")
    await expect(status).to_have_attribute("data-status", "paused")
    assert read_count(tmp_path, "next.started") == 0
    await shot(page, "07-monitor-paused")

    await page.get_by_test_id("resume-button").click()
    await expect(page.get_by_test_id("node-last")).to_have_attribute("data-status", "completed")
    await expect(status).to_have_attribute("data-status", "completed")
    assert read_count(tmp_path, "next.started") == 1
    await expect(page.get_by_test_id("event-log")).to_contain_text("workflow_paused")
    await expect(page.get_by_test_id("event-log")).to_contain_text("workflow_resumed")
    await shot(page, "08-monitor-resumed-completed")


async def test_failure_retry_and_cancel_from_the_monitor(
    page: Any,
    studio: StudioServer,
    orchestrator: AdvancedPluginOrchestrator,
    unique,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    failing = workflow(
        unique("failing"),
        [node("ok", "count"), node("bad", "fail", retry={"max_attempts": 1}), node("after")],
        [edge("ok", "bad"), edge("bad", "after")],
        mode=WorkflowExecutionMode.Sequential,
    )
    await orchestrator.register_workflow(failing)
    execution_id = await orchestrator.execute_workflow(failing.workflow_id)
    await page.goto(f"{studio.url}/#/executions/{execution_id}")
    status = page.get_by_test_id("execution-status")
    await expect(status).to_have_attribute("data-status", "failed")
    await expect(page.get_by_test_id("node-ok")).to_have_attribute("data-status", "completed")
    await expect(page.get_by_test_id("node-bad")).to_have_attribute("data-status", "failed")
    await expect(page.get_by_test_id("node-after")).to_have_attribute("data-status", "cancelled")
    await expect(page.get_by_test_id("error-messages")).to_contain_text("ValueError: boom")
    await expect(page.get_by_test_id("pause-button")).to_have_count(0)
    await page.get_by_test_id("node-bad").click()
    await expect(page.get_by_test_id("node-error")).to_contain_text("boom")
    await shot(page, "09-monitor-failed")

    # Retry from the UI: the completed node is kept, the failed one runs (and fails) again.
    handle = orchestrator.client.get_workflow_handle(execution_id)
    first_run = (await handle.describe()).run_id
    await page.get_by_test_id("retry-button").click()
    await eventually(lambda: handle.describe(), lambda d: d.run_id != first_run)
    final = await orchestrator.wait_for_completion(execution_id, 30)
    assert final.status.value == "failed"
    assert read_count(tmp_path, "ok") == 1
    await expect(status).to_have_attribute("data-status", "failed")
    await expect(page.get_by_test_id("node-bad")).to_have_attribute("data-status", "failed")
    # The event log follows the new run to its end.
    await expect(page.get_by_test_id("event-log")).to_contain_text("workflow_failed")
    await expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "ended")

    # Cancel a running execution from the UI.
    slow = workflow(
        unique("cancel"),
        [node("forever", "sleep", seconds=60), node("never")],
        [edge("forever", "never")],
    )
    await orchestrator.register_workflow(slow)
    execution_id = await orchestrator.execute_workflow(slow.workflow_id)
    await page.goto(f"{studio.url}/#/executions/{execution_id}")
    await expect(page.get_by_test_id("node-forever")).to_have_attribute("data-status", "running")
    await page.get_by_test_id("cancel-button").click()
    await expect(status).to_have_attribute("data-status", "cancelled")
    await expect(page.get_by_test_id("node-forever")).to_have_attribute("data-status", "cancelled")
    await expect(page.get_by_test_id("retry-button")).to_be_visible()
    await shot(page, "10-monitor-cancelled")
