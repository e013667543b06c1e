"""The spec's event-driven example on real files (examples/event_driven_files.json): drop CSV
files, valid ones are processed, invalid ones reach the error handler; files that land while
the worker is dead are picked up after it returns, none handled twice."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from temporalio.api.enums.v1 import PendingActivityState

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from plugins import MAX_CHECKPOINT_BYTES
from tests.helpers.builders import node as plain_node
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "event_driven_files.json"
ZONE_PREFIX = ".data/examples/drop-zone/"  # where the example's paths are, under the worker's cwd


def _example(workflow_id: str, zone: Path) -> PluginWorkflow:
    definition = PluginWorkflow.from_json(json.loads(EXAMPLE.read_text()))
    definition.workflow_id = workflow_id
    for node in definition.nodes:
        for key, value in list(node.configuration.items()):
            if isinstance(value, str) and value.startswith(ZONE_PREFIX):
                node.configuration[key] = str(zone / value.removeprefix(ZONE_PREFIX))
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


def _summarise_zone(workflow_id: str, incoming: Path, out: Path) -> PluginWorkflow:
    """file_system_monitor (existing files are the baseline) -> csv_processor."""
    watcher = WorkflowNode(
        node_id="watch",
        plugin_id="file_system_monitor",
        node_type=WorkflowNodeType.Source,
        configuration={
            "watch_path": str(incoming),
            "file_pattern": "*.csv",
            "include_existing": False,
            "poll_interval": 0.3,
            "settle_seconds": 0.1,
            "heartbeat_timeout": 5,
        },
    )
    summarise = WorkflowNode(
        node_id="summarise",
        plugin_id="csv_processor",
        node_type=WorkflowNodeType.Processor,
        configuration={"output_dir": str(out)},
    )
    return PluginWorkflow(
        workflow_id=workflow_id,
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[watcher, summarise],
        connections=[
            WorkflowConnection(
                source_node="watch", target_node="summarise", connection_type=ConnectionType.Event
            )
        ],
    )


async def test_a_file_dropped_while_paused_in_a_crowded_zone_is_processed(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    """9,000 files with long names: the first checkpoint format listed every one (over
    2 MB), so heartbeats failed, the checkpoint signalled at pause was lost without a word,
    and a file dropped while paused was taken for the baseline and never processed."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    out = tmp_path / "out"
    for i in range(9000):
        (incoming / f"{'x' * 230}-{i:05}.csv").write_text("a\n1\n")
    definition = _summarise_zone(unique("crowded"), incoming, out)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)

    probes = 0

    async def summaries() -> list[str]:
        # Files dropped before the first scan are the baseline: drop until one is processed.
        nonlocal probes
        probes += 1
        _drop(incoming, f"probe{probes}.csv", valid=True)
        return sorted(path.name for path in out.iterdir()) if out.exists() else []

    await eventually(summaries, bool, timeout=90, interval=0.5)
    last = out / f"probe{probes}.summary.json"  # dropped after the baseline: it is processed
    await eventually(lambda: _async(last.exists()), bool, timeout=60)
    await eventually(  # every probe event handled: nothing waits in the queue at the pause
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: (
            c.execution_data["events_processed"] == c.execution_data["events_received"]
            and not c.execution_data.get("events_queued")
        ),
        timeout=60,
    )
    await orchestrator.pause_execution(execution_id)
    await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.node_states["watch"]["counters"]["running"] == 0,
        timeout=60,
    )
    _drop(incoming, "late.csv", valid=True)  # while paused
    await orchestrator.resume_execution(execution_id)
    await eventually(
        lambda: _async((out / "late.summary.json").exists()), bool, timeout=90, interval=0.3
    )
    status = await orchestrator.get_execution_status(execution_id)
    await orchestrator.cancel_execution(execution_id)
    final = await orchestrator.wait_for_completion(execution_id, 60)
    assert status.status is WorkflowExecutionStatus.Running, status.error_messages
    assert status.node_states["watch"]["counters"]["errors"] == 0
    assert final.status is WorkflowExecutionStatus.Cancelled


async def _async(value: bool) -> bool:
    return value


async def test_a_checkpoint_too_large_to_record_fails_the_source_loudly(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    """A source whose checkpoint outgrows MAX_CHECKPOINT_BYTES: the execution fails with an
    error naming the limit, at the first heartbeat after an event, and at a stop."""
    for count, stop in ((1, False), (0, True)):
        source = WorkflowNode(
            node_id="inbox",
            plugin_id="bloated",
            node_type=WorkflowNodeType.Source,
            configuration={"count": count, "checkpoint_bytes": MAX_CHECKPOINT_BYTES + 1},
        )
        definition = PluginWorkflow(
            workflow_id=unique(f"bloated-{count}"),
            execution_mode=WorkflowExecutionMode.EventDriven,
            nodes=[source, plain_node("handle")],
            connections=[
                WorkflowConnection(
                    source_node="inbox", target_node="handle", connection_type=ConnectionType.Event
                )
            ],
        )
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        if stop:
            # Started by a worker, not only scheduled: a source cancelled before it starts
            # never opens, so it has no checkpoint to record and the run just pauses.
            await eventually(
                functools.partial(_source_states, orchestrator, execution_id),
                lambda states: states == [PendingActivityState.PENDING_ACTIVITY_STATE_STARTED],
            )
            await orchestrator.pause_execution(execution_id)
        final = await orchestrator.wait_for_completion(execution_id, 60)
        assert final.status is WorkflowExecutionStatus.Failed
        [message] = final.error_messages
        assert "event source 'inbox' failed" in message
        assert f"over the limit of {MAX_CHECKPOINT_BYTES:,} (MAX_CHECKPOINT_BYTES)" in message


async def _source_states(orchestrator: AdvancedPluginOrchestrator, execution_id: str) -> list[int]:
    """The states of the execution's pending activities (here, its one source's)."""
    description = await orchestrator.client.get_workflow_handle(execution_id).describe()
    return [pending.state for pending in description.raw_description.pending_activities]
