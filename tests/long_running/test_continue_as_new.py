"""Long-running executions continue as new with their state; the execution id, status and
events keep working across the boundary."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowExecutionStatus as TemporalStatus

from engine import AdvancedPluginOrchestrator, WorkflowExecutionStatus
from engine.runtime.contracts import SOURCE_CHECKPOINT_SIGNAL, SourceCheckpoint
from tests.helpers.plugins import read_jsonl
from tests.helpers.waiting import eventually
from tests.long_running.test_event_driven import _router
from tests.long_running.test_streaming import _pipeline

Status = WorkflowExecutionStatus


async def _runs(orchestrator: AdvancedPluginOrchestrator, execution_id: str) -> list[int]:
    """History lengths of every Temporal run of the execution."""
    lengths = []
    query = f"WorkflowId = '{execution_id}'"
    async for execution in orchestrator.client.list_workflows(query):
        lengths.append(execution.history_length)
    return lengths


async def test_stream_continues_as_new_and_loses_nothing(
    short_orchestrator: AdvancedPluginOrchestrator, unique, tmp_path: Path
) -> None:
    orchestrator = short_orchestrator
    definition = _pipeline(
        unique("can-stream"), 3000, delay=0.003, batch_size=20, progress_interval=0.5
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, timeout=120)
    assert context.status is Status.Completed, context.error_messages
    assert context.execution_data["runs"] >= 2  # it crossed at least one run boundary
    written = [item["n"] for item in read_jsonl(tmp_path, definition.workflow_id)]
    assert sorted(written) == [2 * n for n in range(3000)]
    assert len(written) == len(set(written))
    assert context.node_states["sink"]["counters"]["items_in"] == 3000
    lengths = await _runs(orchestrator, execution_id)
    assert len(lengths) == context.execution_data["runs"]
    assert max(lengths) < 200
    events = [e async for e in orchestrator.events(execution_id)]
    assert [e.sequence for e in events] == list(range(events[0].sequence, events[-1].sequence + 1))
    assert events[-1].type.value == "workflow_completed"


async def test_event_run_continues_as_new_with_its_queue_and_dedup(
    short_orchestrator: AdvancedPluginOrchestrator, unique
) -> None:
    orchestrator = short_orchestrator
    definition = _router(unique("can-events"), max_concurrent_events=2)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    for n in range(40):
        await orchestrator.send_event(execution_id, "number", {"n": n}, event_id=f"e{n}")
    context = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data["events_processed"] == 40,
        timeout=120,
    )
    assert context.execution_data["runs"] >= 2
    # Ids seen in an earlier run are still recognised.
    await orchestrator.send_event(execution_id, "number", {"n": 1}, event_id="e1")
    await orchestrator.send_event(execution_id, "number", {"n": 99}, event_id="e99")
    context = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data["events_processed"] == 41,
        timeout=60,
    )
    assert context.execution_data["events_received"] == 41
    assert context.node_states["big"]["counters"]["completed"] == 29 + 1  # 11..39 and 99
    description = await orchestrator.client.get_workflow_handle(execution_id).describe()
    assert description.status is TemporalStatus.RUNNING
    await orchestrator.cancel_execution(execution_id)
    final = await orchestrator.wait_for_completion(execution_id, 60)
    assert final.status is Status.Cancelled
    assert max(await _runs(orchestrator, execution_id)) < 400


async def test_an_idle_event_run_continues_as_new_when_signals_alone_grow_its_history(
    short_orchestrator: AdvancedPluginOrchestrator, unique
) -> None:
    """Signals that only record something (here a source's checkpoint) grow the history of
    an idle run: once that makes continuing as new due, the run must act on it, and events
    sent then must be taken, not refused until the sender gives up."""
    orchestrator = short_orchestrator
    definition = _router(unique("can-idle"))
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    handle = orchestrator.client.get_workflow_handle(execution_id)
    first_run = (await handle.describe()).run_id
    for _ in range(200):  # until the history is well past the 40 that suggest a new run
        await handle.signal(
            SOURCE_CHECKPOINT_SIGNAL, SourceCheckpoint(node_id="inbox", checkpoint=0)
        )
        description = await handle.describe()
        if description.run_id != first_run or description.history_length > 60:
            break
    lengths = await eventually(
        lambda: _runs(orchestrator, execution_id), lambda runs: len(runs) >= 2, timeout=30
    )
    assert max(lengths) < 120
    await orchestrator.send_event(execution_id, "number", {"n": 50}, event_id="late", timeout=30)
    context = await eventually(
        lambda: orchestrator.get_execution_status(execution_id),
        lambda c: c.execution_data["events_processed"] == 1,
        timeout=30,
    )
    assert context.node_states["big"]["counters"]["completed"] == 1
    await orchestrator.cancel_execution(execution_id)
    final = await orchestrator.wait_for_completion(execution_id, 60)
    assert final.status is Status.Cancelled
