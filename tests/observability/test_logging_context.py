"""structlog: every line a plugin logs carries the execution, definition, node, plugin and
attempt; JSON lines in production, for structlog's and the standard library's loggers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from structlog.testing import capture_logs
from temporalio.client import Client

from engine import AdvancedPluginOrchestrator, WorkflowExecutionMode, WorkflowExecutionStatus
from engine.hosting.worker import create_worker
from plugins import PluginContext
from tests.helpers import plugins as test_plugins
from tests.helpers.builders import edge, node, workflow

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("execution_id", "workflow_id", "node_id", "plugin_id", "attempt")


async def test_plugin_log_lines_carry_the_node(
    client: Client, task_queue: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    registry = test_plugins.test_registry(tmp_path)
    module_logger = structlog.get_logger("some.plugin.module")

    @registry.plugin("chatty")
    async def chatty(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        ctx.logger.info("through the context's logger")
        module_logger.info("through a module's own logger")
        if ctx.attempt < 2:
            raise ConnectionError("try again")
        return {}

    @registry.plugin("chatty_sync")
    def chatty_sync(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        ctx.logger.info("through the context's logger")
        module_logger.info("through a module's own logger")
        return {}

    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)
    wf = workflow(
        unique("logged"),
        [
            node("talk", "chatty", retry={"initial_interval": 0.1}),
            node("talk_sync", "chatty_sync"),
        ],
        [edge("talk", "talk_sync")],
        mode=WorkflowExecutionMode.Sequential,
    )
    async with create_worker(client, task_queue=task_queue, plugins=registry):
        await orchestrator.register_workflow(wf)
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            execution_id = await orchestrator.execute_workflow(wf.workflow_id)
            context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages

    mine = [line for line in logs if line.get("execution_id") == execution_id]
    plugin_lines = [line for line in mine if line["event"].startswith("through")]
    seen = sorted((line["node_id"], line["attempt"], line["event"]) for line in plugin_lines)
    assert seen == [
        ("talk", 1, "through a module's own logger"),
        ("talk", 1, "through the context's logger"),
        ("talk", 2, "through a module's own logger"),
        ("talk", 2, "through the context's logger"),
        ("talk_sync", 1, "through a module's own logger"),
        ("talk_sync", 1, "through the context's logger"),
    ]
    for line in mine:
        assert {key: line.get(key) is not None for key in KEYS} == dict.fromkeys(KEYS, True)
        assert line["workflow_id"] == wf.workflow_id
        assert line["plugin_id"] == {"talk": "chatty", "talk_sync": "chatty_sync"}[line["node_id"]]
    failed = [line for line in mine if line["event"] == "node attempt failed"]
    assert [(line["node_id"], line["attempt"]) for line in failed] == [("talk", 1)]
    assert not [line for line in logs if line.get("node_id") and "execution_id" not in line]


_SCRIPT = """
import logging, structlog
from engine.base.logging import configure_logging
configure_logging()
with structlog.contextvars.bound_contextvars(execution_id="e/run-1", node_id="n", attempt=2):
    structlog.get_logger("plugin").info("from structlog", rows=3)
    logging.getLogger("temporalio.activity").warning("from the standard library %s", "too")
"""


def run_script(log_format: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=ROOT,
        env={"PATH": "", "PYTHONPATH": str(ROOT), "ORCHESTRATOR_LOG_FORMAT": log_format},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stderr


def test_json_lines_in_production() -> None:
    lines = [json.loads(line) for line in run_script("").splitlines()]  # stderr is a pipe
    assert [line["event"] for line in lines] == ["from structlog", "from the standard library too"]
    for line in lines:
        assert line["execution_id"] == "e/run-1"
        assert line["node_id"] == "n"
        assert line["attempt"] == 2
        assert line["level"] in ("info", "warning")
        assert "timestamp" in line
    assert lines[0]["rows"] == 3
    assert lines[1]["logger"] == "temporalio.activity"


def test_pretty_in_a_terminal() -> None:
    output = run_script("console")
    assert "from structlog" in output
    assert "from the standard library too" in output
    for line in output.splitlines():
        assert not line.startswith("{")
        assert "execution_id=e/run-1" in line
