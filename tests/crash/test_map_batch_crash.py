"""A worker killed while it runs a batched map's batches: the lost batches run again whole on
the next worker, and each item is counted once."""

from __future__ import annotations

from pathlib import Path

from engine import (
    AdvancedPluginOrchestrator,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from tests.helpers.builders import edge, node, workflow
from tests.helpers.plugins import read_count
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually


async def _count(directory: Path, name: str) -> int:
    return read_count(directory, name)


async def test_worker_killed_mid_batch(
    dev_server: DevServer, task_queue: str, unique, tmp_path: Path
) -> None:
    definition = workflow(
        unique("batch-crash"),
        [
            node("list", "echo", emit={"numbers": [{"n": n} for n in range(6)]}),
            WorkflowNode(
                node_id="split",
                plugin_id="split",
                node_type=WorkflowNodeType.Splitter,
                configuration={"items": "list.numbers", "batch_size": 3},
            ),
            node("slow", "sleep", seconds=2, heartbeat_timeout=2, retry={"initial_interval": 0.2}),
            WorkflowNode(
                node_id="gather", plugin_id="aggregate", node_type=WorkflowNodeType.Aggregator
            ),
        ],
        [edge("list", "split"), edge("split", "slow"), edge("slow", "gather")],
    )
    client = await connect(dev_server.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    first = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        # Both batches run (six items at once), none has finished.
        await eventually(lambda: _count(tmp_path, "slow.started"), lambda c: c == 6)
    finally:
        first.kill()
    assert read_count(tmp_path, "slow") == 0
    second = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    finally:
        assert second.terminate() == 0
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    assert context.node_states["gather"]["result"]["items"] == [{"slept": 2}] * 6
    assert read_count(tmp_path, "slow.started") == 12  # the lost batches ran again whole
    assert read_count(tmp_path, "slow") == 6
    # Each item counted once, although its batch ran twice.
    assert context.node_states["slow"]["result"] == {
        "runs": 6,
        "completed": 6,
        "failed": 0,
        "skipped": 0,
    }
    assert "Fatal Python error" not in second.stderr_text()
