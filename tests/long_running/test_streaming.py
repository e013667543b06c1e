"""Streaming executions on the real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from engine import (
    AdvancedPluginOrchestrator,
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from tests.helpers.builders import edge, node
from tests.helpers.plugins import read_jsonl
from tests.helpers.waiting import eventually

Status = WorkflowExecutionStatus


def _pipeline(
    workflow_id: str, count: int | None, delay: float = 0.0, **settings: object
) -> PluginWorkflow:
    source = WorkflowNode(
        node_id="source",
        plugin_id="numbers",
        node_type=WorkflowNodeType.Source,
        configuration={"count": count, "delay": delay},
    )
    return PluginWorkflow(
        workflow_id=workflow_id,
        execution_mode=WorkflowExecutionMode.Streaming,
        nodes=[source, node("double", "double"), node("sink", "collect", name=workflow_id)],
        connections=[edge("source", "double"), edge("double", "sink")],
        global_configuration={"batch_size": 50, "batch_max_wait": 0.05, **settings},
    )


async def test_finite_stream_completes(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = _pipeline(unique("stream"), 1000)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    assert context.status is Status.Completed, context.error_messages
    items = read_jsonl(tmp_path, definition.workflow_id)
    assert sorted(item["n"] for item in items) == [2 * n for n in range(1000)]
    counters = context.node_states["double"]["counters"]
    assert counters["items_in"] == 1000
    assert counters["items_out"] == 1000
    assert context.node_states["sink"]["counters"]["items_out"] == 1000
    assert context.node_states["source"]["counters"]["batches"] >= 20
    events = [e.type.value async for e in orchestrator.events(execution_id)]
    assert events[0] == "workflow_started"
    assert events[-1] == "workflow_completed"


def _ns(tmp_path: Path, name: str) -> list[int]:
    return [item["n"] for item in read_jsonl(tmp_path, name)]


async def test_pause_stops_reading_resume_continues_cancel_commits(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = _pipeline(unique("pausing"), None, delay=0.005, max_batches_in_flight=2)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    name = definition.workflow_id
    await eventually(lambda: _async(len(_ns(tmp_path, name))), lambda n: n >= 100)
    await orchestrator.pause_execution(execution_id)
    paused = await orchestrator.get_execution_status(execution_id)
    assert paused.status is Status.Paused
    # The stream drains and stops: its activity ends, so nothing can read or write any more.
    handle = orchestrator.client.get_workflow_handle(execution_id)
    await eventually(
        lambda: handle.describe(),
        lambda d: not d.raw_description.pending_activities,
        timeout=30,
    )
    settled = len(_ns(tmp_path, name))
    # The stream's last report reaches the run: every item it read was written.
    status = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.node_states["sink"]["counters"]["items_in"] == settled,
        timeout=10,
    )
    assert status.status is Status.Paused
    await orchestrator.resume_execution(execution_id)
    await eventually(lambda: _async(len(_ns(tmp_path, name))), lambda n: n >= settled + 100)
    await orchestrator.cancel_execution(execution_id)
    final = await orchestrator.wait_for_completion(execution_id, 30)
    assert final.status is Status.Cancelled
    written = _ns(tmp_path, name)
    # Every item exactly once, in order, with no gap: pause and cancel lost nothing and
    # repeated nothing.
    assert written == [2 * n for n in range(len(written))]
    counters = final.node_states["sink"]["counters"]
    assert counters["items_in"] == len(written)
    assert final.execution_data["checkpoint"] == len(written)


async def test_a_new_version_is_adopted_at_a_batch_boundary(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    """Insert a filter into a running stream: items after the switch are filtered, none
    before it are processed again."""
    definition = _pipeline(unique("redeploy"), None, delay=0.005)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    name = definition.workflow_id
    await eventually(lambda: _async(len(_ns(tmp_path, name))), lambda n: n >= 100)
    changed = definition.model_copy(deep=True)
    changed.nodes.insert(2, node("only_fours", "echo"))
    changed.connections = [
        edge("source", "double"),
        edge("double", "sink", condition="n % 4 == 0"),
    ]
    await orchestrator.update_workflow(changed)
    status = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data["workflow_version"] == 2,
    )
    assert status.status is Status.Running

    def filtered_items() -> int:
        written = _ns(tmp_path, name)
        return sum(1 for i, n in enumerate(written) if n != 2 * i)

    # The running stream drains what it had read on version 1, then restarts on version 2.
    await eventually(lambda: _async(filtered_items()), lambda n: n >= 20)
    await orchestrator.cancel_execution(execution_id)
    await orchestrator.wait_for_completion(execution_id, 30)
    written = _ns(tmp_path, name)
    assert len(written) == len(set(written))  # nothing processed twice
    switch = next(i for i, n in enumerate(written) if n != 2 * i)
    assert written[:switch] == [2 * n for n in range(switch)]  # before: every item
    after = written[switch:]
    assert after
    assert all(n % 4 == 0 for n in after)
    assert after[0] in (2 * switch, 2 * switch + 2)  # continues where it was


async def _async(value: int) -> int:
    return value


async def test_the_source_never_runs_far_ahead_of_a_slow_sink(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    batch, in_flight = 20, 2
    definition = _pipeline(
        unique("backpressure"),
        None,  # endless and fast: only back-pressure holds it
        batch_size=batch,
        batch_max_wait=0.05,
        max_batches_in_flight=in_flight,
        progress_interval=0.5,
    )
    definition.nodes[2].configuration["delay"] = 0.2  # the sink takes 0.2 s per batch
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    started = asyncio.get_running_loop().time()
    gaps = []
    for _ in range(6):
        await asyncio.sleep(0.6)
        status = await orchestrator.get_execution_status(execution_id)
        read = status.node_states["source"]["counters"]["items_out"]
        written = status.node_states["sink"]["counters"]["items_in"]
        gaps.append(read - written)
    await orchestrator.cancel_execution(execution_id)
    await orchestrator.wait_for_completion(execution_id, 30)
    # Counted at batch boundaries: at most the queued batches, the one being written, and
    # the one the reader holds while it waits for room.
    assert max(gaps) <= (in_flight + 2) * batch, gaps
    elapsed = asyncio.get_running_loop().time() - started
    written = _ns(tmp_path, definition.workflow_id)
    # The sink's pace (a batch per 0.2 s) set the rate, not the source's (thousands a second).
    assert batch <= len(written) <= (elapsed / 0.2 + 1) * batch


def _to_data_sink(
    workflow_id: str, count: int | None, path: Path, **settings: object
) -> PluginWorkflow:
    """numbers -> double -> data_sink writing ``path``."""
    definition = _pipeline(workflow_id, count, **settings)
    definition.nodes[2] = node("sink", "data_sink", path=str(path))
    return definition


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
async def test_data_sink_appends_every_batch_of_a_stream(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path, suffix: str
) -> None:
    """batch_size=1 and 4 records: the file replaced itself on every batch (it held the last
    one while the counters said more were written); now every batch is appended once."""
    path = tmp_path / f"out{suffix}"
    path.write_text("left over from an earlier run\n")
    definition = _to_data_sink(unique("sink-stream"), 4, path, batch_size=1)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    assert context.status is Status.Completed, context.error_messages
    if suffix == ".jsonl":
        written = [json.loads(line) for line in path.read_text().splitlines()]
        assert written == [{"n": 2 * n} for n in range(4)]
    else:
        assert path.read_bytes() == b"n\r\n0\r\n2\r\n4\r\n6\r\n"
    counters = context.node_states["sink"]["counters"]
    assert counters["items_in"] == 4
    assert counters["items_out"] == 4
    assert context.node_states["source"]["counters"]["batches"] == 4


async def test_data_sink_refuses_a_json_array_in_a_stream(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = _to_data_sink(unique("sink-json"), 4, tmp_path / "out.json", batch_size=1)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, timeout=60)
    assert context.status is Status.Failed
    assert "cannot be appended to" in " ".join(context.error_messages)
