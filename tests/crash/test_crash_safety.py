"""Crash safety: SIGKILL the worker or the server mid-run; the run completes, and nodes that
completed before the crash ran exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer, free_port
from tests.helpers.builders import chain, node
from tests.helpers.plugins import read_count
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually


def _definition(workflow_id: str):
    """before (count) -> slow (sleep 3 s, heartbeating) -> after (count)."""
    definition = chain(workflow_id, 3)
    definition.nodes = [
        node("before", "count"),
        node("slow", "sleep", seconds=3, heartbeat_timeout=2, retry={"initial_interval": 0.2}),
        node("after", "count"),
    ]
    for connection, (source, target) in zip(
        definition.connections, [("before", "slow"), ("slow", "after")], strict=True
    ):
        connection.source_node, connection.target_node = source, target
    return definition


async def _count(directory: Path, name: str) -> int:
    return read_count(directory, name)


async def test_worker_killed_mid_node(
    dev_server: DevServer, task_queue: str, unique, tmp_path: Path
) -> None:
    client = await connect(dev_server.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    first = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        definition = _definition(unique("worker-crash"))
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        await eventually(lambda: _count(tmp_path, "slow.started"), lambda c: c == 1)
    finally:
        first.kill()
    assert read_count(tmp_path, "before") == 1
    second = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    finally:
        assert second.terminate() == 0
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    assert read_count(tmp_path, "before") == 1  # completed before the crash: ran once
    assert read_count(tmp_path, "slow.started") == 2  # the lost attempt was retried
    assert read_count(tmp_path, "slow") == 1
    assert read_count(tmp_path, "after") == 1
    assert context.node_states["slow"]["attempts"] == 2
    assert "Fatal Python error" not in second.stderr_text()


async def test_server_killed_and_restarted_mid_run(task_queue: str, unique, tmp_path: Path) -> None:
    server = DevServer(tmp_path / "server", port=free_port(), ui_port=0).start()
    worker = None
    try:
        client = await connect(server.address)
        orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
        worker = WorkerProcess(server.address, task_queue, tmp_path)
        definition = _definition(unique("server-crash"))
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        await eventually(lambda: _count(tmp_path, "slow.started"), lambda c: c == 1)
        server.kill()
        await asyncio.sleep(1)
        server.start()  # same SQLite file, same port
        context = await orchestrator.wait_for_completion(execution_id, timeout=120)
        assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
        assert read_count(tmp_path, "before") == 1
        assert read_count(tmp_path, "after") == 1
        assert read_count(tmp_path, "slow") >= 1
        # The registry survived too.
        assert (await orchestrator.get_workflow(definition.workflow_id)).version == 1
    finally:
        if worker is not None:
            worker.terminate()
        server.stop()
