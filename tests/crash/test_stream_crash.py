"""SIGKILL of the worker mid-stream: no item is lost, and the items processed twice are
bounded by the batches in flight plus the last heartbeat interval."""

from __future__ import annotations

import json
from pathlib import Path

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.hosting.connection import connect
from engine.hosting.devserver import DevServer
from tests.helpers.builders import node
from tests.helpers.plugins import read_jsonl
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually
from tests.long_running.test_streaming import _pipeline

BATCH = 25
IN_FLIGHT = 4
RATE = 250  # items per second the source produces (delay 4 ms)
HEARTBEAT_THROTTLE = 1.0  # engine.hosting.worker default: checkpoints reach the server this often


async def _written(directory: Path, name: str) -> int:
    return len(read_jsonl(directory, name))


async def test_worker_killed_mid_stream(
    dev_server: DevServer, task_queue: str, unique, tmp_path: Path
) -> None:
    client = await connect(dev_server.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    definition = _pipeline(
        unique("stream-crash"),
        1500,
        delay=1 / RATE,
        batch_size=BATCH,
        batch_max_wait=0.05,
        max_batches_in_flight=IN_FLIGHT,
    )
    definition.nodes[0].configuration["heartbeat_timeout"] = 2
    name = definition.workflow_id
    first = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        await eventually(lambda: _written(tmp_path, name), lambda n: n >= 400, timeout=60)
    finally:
        first.kill()
    second = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        context = await orchestrator.wait_for_completion(execution_id, timeout=120)
    finally:
        assert second.terminate() == 0
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    written = [item["n"] // 2 for item in read_jsonl(tmp_path, name)]
    assert set(written) == set(range(1500))  # nothing lost
    duplicates = len(written) - len(set(written))
    bound = (IN_FLIGHT + 1) * BATCH + int(RATE * HEARTBEAT_THROTTLE * 2)
    print(f"duplicates after the crash: {duplicates} (bound {bound})")
    assert duplicates <= bound, f"{duplicates} duplicates, bound {bound}"
    assert "Fatal Python error" not in second.stderr_text()


async def test_worker_killed_mid_stream_data_sink_writes_each_item_once(
    dev_server: DevServer, task_queue: str, unique, tmp_path: Path
) -> None:
    """data_sink in a stream: after a SIGKILL the stream replays the batches since its last
    recorded checkpoint, and the sink cuts its file back to where they began: every item
    once, in order."""
    client = await connect(dev_server.address)
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue)
    definition = _pipeline(
        unique("sink-crash"),
        1500,
        delay=1 / RATE,
        batch_size=BATCH,
        batch_max_wait=0.05,
        max_batches_in_flight=IN_FLIGHT,
    )
    output = tmp_path / "out" / "items.jsonl"
    definition.nodes[2] = node("sink", "data_sink", path=str(output))
    definition.nodes[0].configuration["heartbeat_timeout"] = 2

    def written() -> list[int]:
        if not output.exists():
            return []
        lines = output.read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["n"] // 2 for line in lines if line.endswith("}")]

    first = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        await orchestrator.register_workflow(definition)
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        await eventually(lambda: _async(len(written())), lambda n: n >= 400, timeout=60)
    finally:
        first.kill()
    killed_at = len(written())
    second = WorkerProcess(dev_server.address, task_queue, tmp_path)
    try:
        context = await orchestrator.wait_for_completion(execution_id, timeout=120)
    finally:
        assert second.terminate() == 0
    assert context.status is WorkflowExecutionStatus.Completed, context.error_messages
    assert killed_at < 1500  # the kill landed mid-stream
    lines = output.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["n"] // 2 for line in lines] == list(range(1500))  # once, in order
    assert context.node_states["sink"]["counters"]["items_out"] >= 1500


async def _async(value: int) -> int:
    return value
