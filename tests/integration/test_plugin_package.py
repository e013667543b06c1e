"""A separately installed plugin package: a worker picks its plugins up through the
``orchestrator.plugins`` entry points, and they run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from tests.helpers.builders import edge, node, workflow
from tests.helpers.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "plugin_package"


async def test_installed_package_plugins_are_discovered_and_run(
    dev_server: DevServer, task_queue: str, unique, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(  # noqa: ASYNC221 (a one-off install before anything runs)
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(PACKAGE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    worker = subprocess.Popen(  # noqa: ASYNC220 (a child process kept for the whole test)
        [
            sys.executable,
            "-m",
            "engine.cli",
            "--address",
            dev_server.address,
            "--task-queue",
            task_queue,
            "worker",
            "--graceful-shutdown",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        client = await connect(dev_server.address)
        orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
        catalog = await eventually(
            orchestrator.get_plugin_catalog,
            lambda plugins: any(p.plugin_id == "word_count" for p in plugins),
            timeout=60,
        )
        word_count = next(p for p in catalog if p.plugin_id == "word_count")
        assert word_count.input_ports == ["text"]
        assert word_count.config_schema is not None
        assert "top" in word_count.config_schema["properties"]

        listing = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "engine.cli",
            "--address",
            dev_server.address,
            "--task-queue",
            task_queue,
            "plugins",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await listing.communicate()
        assert listing.returncode == 0, err.decode()
        assert "word_count" in out.decode()
        assert "reverse_text" in out.decode()

        definition = workflow(
            unique("from-package"),
            [
                node("say", "reverse_text", field="phrase"),
                node("count", "word_count", top=2),
                node("flip", "reverse_text"),
            ],
            [edge("say", "count", source_port="text", target_port="text")],
        )
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(
            definition.workflow_id, {"phrase": "b a b c b a", "text": "olleh"}
        )
        context = await orchestrator.wait_for_completion(execution_id, 60)
        assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
        results = context.execution_data["results"]
        assert results["count"] == {"counts": {"b": 3, "a": 2}, "words": 6}
        assert results["flip"] == {"text": "hello"}
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0
    assert b"Fatal Python error" not in stderr
