"""A worker SIGKILLed while a failed run compensates its nodes: the compensations resume on
the next worker, each completes (at least once: the one cut short runs again), none is
skipped, and the order stays the reverse of completion."""

from __future__ import annotations

from pathlib import Path

from engine import (
    AdvancedPluginOrchestrator,
    NodeCompensation,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
)
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from tests.helpers.builders import edge, node, workflow
from tests.helpers.plugins import read_jsonl
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually


async def _undone(directory: Path) -> list[str]:
    return [call["node_id"] for call in read_jsonl(directory, "undo")]


async def test_worker_killed_mid_compensation(
    dev_server: DevServer, task_queue: str, unique, tmp_path: Path
) -> None:
    quick = {"max_attempts": 3, "initial_interval": 0.2}
    reserve, charge = node("reserve"), node("charge")
    reserve.compensation = NodeCompensation(plugin_id="undo", configuration={"retry": quick})
    # Long enough to be killed in, heartbeating (the engine does it for the plugin).
    charge.compensation = NodeCompensation(
        plugin_id="undo", configuration={"seconds": 3, "heartbeat_timeout": 2, "retry": quick}
    )
    definition = workflow(
        unique("saga-crash"),
        [reserve, charge, node("ship", "fail", retry={"max_attempts": 1})],
        [edge("reserve", "charge"), edge("charge", "ship")],
        mode=WorkflowExecutionMode.Sequential,
    )
    client = await connect(dev_server.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    first = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        await eventually(lambda: _undone(tmp_path), lambda undone: undone == ["charge"])
    finally:
        first.kill()
    second = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    finally:
        assert second.terminate() == 0
    assert context.status is WorkflowExecutionStatus.Failed
    calls = read_jsonl(tmp_path, "undo")
    # charge's first attempt died with its worker and ran again; then reserve's, once.
    assert [(c["node_id"], c["attempt"]) for c in calls] == [
        ("charge", 1),
        ("charge", 2),
        ("reserve", 1),
    ]
    assert context.execution_data["compensation"]["status"] == "completed"
    assert context.node_states["charge"]["compensation"]["attempts"] == 2
    assert "node 'ship'" in context.error_messages[0]
    assert "Fatal Python error" not in second.stderr_text()
