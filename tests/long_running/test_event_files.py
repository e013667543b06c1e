"""The spec's event-driven example on real files (examples/event_driven_files.json): drop CSV
files, valid ones are processed, invalid ones reach the error handler; files that land while
the worker is dead are picked up after it returns, none handled twice."""

from __future__ import annotations

import json
from pathlib import Path

from engine import AdvancedPluginOrchestrator, PluginWorkflow, WorkflowExecutionStatus
from engine.connection import connect
from engine.devserver import DevServer
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "event_driven_files.json"


def _example(workflow_id: str, zone: Path) -> PluginWorkflow:
    definition = PluginWorkflow.from_json(json.loads(EXAMPLE.read_text()))
    definition.workflow_id = workflow_id
    for node in definition.nodes:
        for key, value in list(node.configuration.items()):
            if isinstance(value, str) and value.startswith("drop-zone/"):
                node.configuration[key] = str(zone / value.removeprefix("drop-zone/"))
    watcher = definition.node("file_watcher")
    assert watcher is not None
    watcher.configuration.update(poll_interval=0.1, settle_seconds=0.1, heartbeat_timeout=2)
    return definition


def _drop(incoming: Path, name: str, valid: bool) -> None:
    text = "name,amount\nada,3\nbob,4\n" if valid else "name,amount\n"  # no rows: invalid
    (incoming / f".{name}.tmp").write_text(text)
    (incoming / f".{name}.tmp").rename(incoming / name)  # land atomically


async def test_drop_zone_survives_a_dead_worker(
    dev_server: DevServer, task_queue: str, unique, tmp_path: Path
) -> None:
    zone = tmp_path / "zone"
    incoming = zone / "incoming"
    incoming.mkdir(parents=True)
    client = await connect(dev_server.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    definition = _example(unique("drop-zone"), zone)
    await orchestrator.register_workflow(definition)

    async def processed() -> int:
        status = await orchestrator.get_execution_status(execution_id)
        return int(status.execution_data.get("events_processed", 0))  # absent while pending

    worker = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        for i in range(3):
            _drop(incoming, f"good{i}.csv", valid=True)
        _drop(incoming, "bad0.csv", valid=False)
        await eventually(processed, lambda n: n == 4, timeout=60)
    finally:
        worker.kill()

    # Files land while no worker runs.
    _drop(incoming, "good3.csv", valid=True)
    _drop(incoming, "bad1.csv", valid=False)

    worker = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        await eventually(processed, lambda n: n == 6, timeout=60)
        status = await orchestrator.get_execution_status(execution_id)
        await orchestrator.cancel_execution(execution_id)
        final = await orchestrator.wait_for_completion(execution_id, 60)
    finally:
        worker.terminate()

    assert status.status is WorkflowExecutionStatus.Running
    assert status.execution_data["events_received"] == 6  # each file once
    nodes = status.node_states
    assert nodes["process_valid_file"]["counters"]["completed"] == 4
    assert nodes["handle_invalid_file"]["counters"]["completed"] == 2
    assert nodes["process_valid_file"]["counters"]["skipped"] == 2
    summaries = sorted(p.name for p in (zone / "processed").iterdir())
    assert summaries == [f"good{i}.summary.json" for i in range(4)]
    summary = json.loads((zone / "processed" / "good0.summary.json").read_text())
    assert summary["rows"] == 2
    assert summary["numeric"]["amount"]["sum"] == 7
    assert sorted(p.name for p in (zone / "quarantine").iterdir()) == ["bad0.csv", "bad1.csv"]
    assert len(list((zone / "errors").iterdir())) == 2
    assert final.status is WorkflowExecutionStatus.Cancelled
