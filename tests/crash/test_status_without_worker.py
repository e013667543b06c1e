"""Status, node states and events of a running execution with every worker gone: read from
Temporal's history (replayed by the client), saying as of when."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from tests.helpers.builders import chain, node
from tests.helpers.plugins import read_count
from tests.helpers.processes import ROOT, WorkerProcess
from tests.helpers.waiting import eventually


def _definition(workflow_id: str):
    """first (count) -> slow (sleeps 600 s) -> last (count)."""
    definition = chain(workflow_id, 3)
    definition.nodes = [
        node("first", "count"),
        node("slow", "sleep", seconds=600, heartbeat_timeout=5),
        node("last", "count"),
    ]
    for connection, (source, target) in zip(
        definition.connections, [("first", "slow"), ("slow", "last")], strict=True
    ):
        connection.source_node, connection.target_node = source, target
    return definition


async def _started(directory: Path) -> int:
    return read_count(directory, "slow.started")


async def test_status_and_events_of_a_running_execution_with_no_worker(
    dev_server: DevServer, task_queue: str, unique, tmp_path: Path
) -> None:
    client = await connect(dev_server.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    worker = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        definition = _definition(unique("no-worker"))
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        await eventually(lambda: _started(tmp_path), lambda count: count == 1)
    finally:
        worker.kill()

    context = await orchestrator.get_execution_status(execution_id)
    assert context.status is WorkflowExecutionStatus.Running
    assert context.node_states["first"]["status"] == "completed"
    assert context.node_states["first"]["attempts"] == 1
    assert context.node_states["slow"]["status"] == "running"
    assert context.node_states["last"]["status"] == "pending"
    observed = context.execution_data["observed"]
    assert observed["source"] == "history"
    assert observed["as_of"]
    assert "no worker" in observed["reason"]

    # The lost attempt times out (heartbeat_timeout 5 s) and Temporal schedules the next one.
    slow = await eventually(
        lambda: orchestrator.get_node_status(execution_id, "slow"),
        lambda state: state["attempts"] == 2,
        timeout=60,
        interval=1.0,
    )
    assert slow["status"] == "running"
    assert "timeout" in slow["last_error"].lower()

    seen = []
    async for event in orchestrator.events(execution_id):
        seen.append((event.type.value, event.node_id))
        if event.type.value == "node_started" and event.node_id == "slow":
            break
    assert seen[0] == ("workflow_started", None)
    assert ("node_completed", "first") in seen

    # As a user would: the CLI, in a fresh process.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "ORCHESTRATOR_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["ORCHESTRATOR_DATA_DIR"] = str(tmp_path / "data")
    common = ["--address", dev_server.address, "--task-queue", task_queue]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "engine.cli", *common, "status", execution_id, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    printed = json.loads(result.stdout)
    assert printed["status"] == "running"
    assert printed["node_states"]["slow"]["status"] == "running"
    assert printed["execution_data"]["observed"]["source"] == "history"

    plain = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "engine.cli", *common, "status", execution_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert plain.returncode == 0, plain.stderr
    assert "read from Temporal's history" in plain.stdout

    # A worker that comes back takes the run on from where the history says it is.
    second = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        await orchestrator.cancel_execution(execution_id)
        final = await orchestrator.wait_for_completion(execution_id, timeout=60)
    finally:
        second.terminate()
    assert final.status is WorkflowExecutionStatus.Cancelled
    assert "observed" not in final.execution_data
