"""Pause, resume, cancel and status from the client, against the real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client

from engine import (
    AdvancedPluginOrchestrator,
    PluginError,
    PluginErrorCode,
    WorkflowExecutionStatus,
)
from engine.hosting.worker import create_worker
from plugins import PluginRegistry
from tests.helpers.builders import chain, node, workflow
from tests.helpers.histories import scheduled_activities
from tests.helpers.plugins import read_count
from tests.helpers.waiting import eventually

Status = WorkflowExecutionStatus
Code = PluginErrorCode


async def _code(awaitable: object) -> PluginErrorCode:
    with pytest.raises(PluginError) as info:
        await awaitable  # type: ignore[misc]
    return info.value.code


def _sleep_chain(workflow_id: str, length: int, seconds: float):
    nodes = [node(f"n{i}", "sleep", seconds=seconds) for i in range(length)]
    definition = chain(workflow_id, length)
    definition.nodes = nodes
    return definition


async def test_pause_resume_and_status(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = _sleep_chain(unique("pause"), 3, 1.0)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await eventually(
        lambda: orchestrator.get_node_status(execution_id, "n0"),
        lambda s: s["status"] == "running",
    )
    assert await _code(orchestrator.resume_execution(execution_id)) is Code.InvalidState
    await orchestrator.pause_execution(execution_id)
    context = await orchestrator.get_execution_status(execution_id)
    assert context.status is Status.Paused
    assert await _code(orchestrator.pause_execution(execution_id)) is Code.InvalidState
    # The running node finishes and is recorded; nothing new starts.
    await eventually(
        lambda: orchestrator.get_node_status(execution_id, "n0"),
        lambda s: s["status"] == "completed",
    )
    # The workflow task that recorded n0's completion started nothing.
    assert await scheduled_activities(orchestrator.client, execution_id) == ["n0"]
    paused = await orchestrator.get_execution_status(execution_id)
    assert paused.status is Status.Paused
    assert paused.node_states["n1"]["status"] == "pending"
    assert read_count(tmp_path, "n1.started") == 0
    assert execution_id in await orchestrator.get_active_executions()

    await orchestrator.resume_execution(execution_id)
    final = await orchestrator.wait_for_completion(execution_id, 30)
    assert final.status is Status.Completed
    assert execution_id not in await orchestrator.get_active_executions()
    assert await _code(orchestrator.pause_execution(execution_id)) is Code.InvalidState
    assert await _code(orchestrator.resume_execution(execution_id)) is Code.InvalidState
    assert await _code(orchestrator.cancel_execution(execution_id)) is Code.InvalidState


async def test_cancel_reaches_the_running_plugin(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = _sleep_chain(unique("cancel"), 2, 30.0)
    for n in definition.nodes:
        n.configuration["heartbeat_timeout"] = 2
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await eventually(lambda: _async(read_count(tmp_path, "n0.started")), lambda c: c == 1)
    started = asyncio.get_running_loop().time()
    await orchestrator.cancel_execution(execution_id)
    await orchestrator.cancel_execution(execution_id)  # a second request is harmless
    context = await orchestrator.wait_for_completion(execution_id, 30)
    assert asyncio.get_running_loop().time() - started < 10
    assert context.status is Status.Cancelled
    assert context.node_states["n0"]["status"] == "cancelled"
    assert context.node_states["n1"]["status"] == "cancelled"
    assert read_count(tmp_path, "n0") == 0  # the plugin was interrupted, never finished
    assert "execution was cancelled" in context.error_messages
    events = [e.type.value async for e in orchestrator.events(execution_id)]
    assert events[-1] == "workflow_cancelled"


async def test_node_status_shows_attempts_while_retrying(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("retrying"),
        [node("f", "flaky", succeed_on=3, retry={"initial_interval": 1.5, "max_attempts": 3})],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    state = await eventually(
        lambda: orchestrator.get_node_status(execution_id, "f"),
        lambda s: s.get("attempts", 0) >= 2 and "last_error" in s,
    )
    assert state["status"] == "running"
    assert "attempt" in state["last_error"]
    final = await orchestrator.get_node_status(execution_id, "f")
    final = await eventually(
        lambda: orchestrator.get_node_status(execution_id, "f"),
        lambda s: s["status"] == "completed",
    )
    assert final["attempts"] == 3
    assert final["result"] == {"attempt": 3}
    assert final["started_at"] <= final["completed_at"]
    assert await _code(orchestrator.get_node_status(execution_id, "zz")) is Code.NodeNotFound


async def test_status_of_ended_runs_needs_no_worker(
    client: Client, task_queue: str, registry: PluginRegistry, unique
) -> None:
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=2)
    ids = {}
    async with create_worker(
        client, task_queue=task_queue, plugins=registry, max_cached_workflows=0
    ):
        ok, bad, slow = (
            chain(unique("ok"), 1),
            workflow(unique("bad"), [node("x", "fail", retry={"max_attempts": 1})]),
            _sleep_chain(unique("slow"), 1, 30),
        )
        for definition in (ok, bad, slow):
            await orchestrator.register_workflow(definition)
            ids[definition.workflow_id] = await orchestrator.execute_workflow(
                definition.workflow_id
            )
        await orchestrator.wait_for_completion(ids[ok.workflow_id], 30)
        await orchestrator.wait_for_completion(ids[bad.workflow_id], 30)
        await eventually(
            lambda: orchestrator.get_node_status(ids[slow.workflow_id], "n0"),
            lambda s: s["status"] == "running",
        )
        await orchestrator.cancel_execution(ids[slow.workflow_id])
        await orchestrator.wait_for_completion(ids[slow.workflow_id], 30)
    # No worker polls the task queue any more.
    expected = {
        ok.workflow_id: Status.Completed,
        bad.workflow_id: Status.Failed,
        slow.workflow_id: Status.Cancelled,
    }
    for workflow_id, status in expected.items():
        context = await asyncio.wait_for(orchestrator.get_execution_status(ids[workflow_id]), 5)
        assert context.status is status
        assert context.workflow_id == workflow_id
        events = [e async for e in orchestrator.events(ids[workflow_id])]
        assert events[-1].type.value == f"workflow_{status.value}"
    assert (await orchestrator.get_execution_status(ids[ok.workflow_id])).execution_data["results"]
    assert (
        "ValueError"
        in (await orchestrator.get_execution_status(ids[bad.workflow_id])).error_messages[0]
    )


async def test_pending_until_a_worker_arrives(
    client: Client, task_queue: str, registry: PluginRegistry, unique
) -> None:
    orchestrator = AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=2)
    definition = chain(unique("pending"), 1)
    # Register needs no worker (it starts the registry entity); reading it back does.
    await orchestrator.register_workflow(definition)
    async with create_worker(client, task_queue=task_queue, plugins=registry):
        await orchestrator.get_workflow(definition.workflow_id)
    other_queue = AdvancedPluginOrchestrator(
        client, task_queue=f"{task_queue}-idle", query_timeout=2
    )
    # Executions of the idle queue have no worker.
    other_queue._recent_definitions.clear()
    async with create_worker(client, task_queue=task_queue, plugins=registry):
        definition_copy = await orchestrator.get_workflow(definition.workflow_id)
    assert definition_copy.version == 1
    execution_id = await _start_without_worker(other_queue, orchestrator, definition.workflow_id)
    context = await other_queue.get_execution_status(execution_id)
    assert context.status is Status.Pending
    assert context.workflow_id == definition.workflow_id
    async with create_worker(client, task_queue=f"{task_queue}-idle", plugins=registry):
        final = await other_queue.wait_for_completion(execution_id, 30)
    assert final.status is Status.Completed


async def test_unknown_execution(orchestrator: AdvancedPluginOrchestrator, worker: object) -> None:
    for execution_id in ("no-such-run", "", "x" * 1001):
        assert (
            await _code(orchestrator.get_execution_status(execution_id)) is Code.ExecutionNotFound
        )
    assert await _code(orchestrator.cancel_execution("no-such-run")) is Code.ExecutionNotFound
    assert await _code(orchestrator.pause_execution("no-such-run")) is Code.ExecutionNotFound
    assert await _code(orchestrator.wait_for_completion("no-such-run", 2)) is Code.ExecutionNotFound


async def test_wait_for_completion_times_out(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = _sleep_chain(unique("wait"), 1, 5)
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    assert await _code(orchestrator.wait_for_completion(execution_id, 0.5)) is Code.Timeout
    await orchestrator.cancel_execution(execution_id)
    assert (await orchestrator.wait_for_completion(execution_id, 10)).status is Status.Cancelled


async def _async(value: int) -> int:
    return value


async def _start_without_worker(
    idle: AdvancedPluginOrchestrator, source: AdvancedPluginOrchestrator, workflow_id: str
) -> str:
    """Start an execution on the idle queue (the registry entity lives on the source queue)."""
    from engine.runtime.contracts import EXECUTION_WORKFLOW, ExecutionInput

    async with create_worker(source.client, task_queue=source.task_queue):
        definition = await source.get_workflow(workflow_id)
    handle = await idle.client.start_workflow(
        EXECUTION_WORKFLOW,
        ExecutionInput(workflow=definition),
        id=f"{workflow_id}/run-idle",
        task_queue=idle.task_queue,
        memo={"workflow_id": workflow_id, "workflow_version": definition.version},
    )
    return handle.id
