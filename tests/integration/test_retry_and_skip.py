"""Operators' first tools: retry a failed execution from its failed node, skip a node."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode, WorkflowExecutionStatus
from tests.helpers.builders import edge, node, workflow
from tests.helpers.plugins import read_count
from tests.helpers.waiting import eventually

Status = WorkflowExecutionStatus


async def test_retry_from_the_failed_node_keeps_what_succeeded(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = workflow(
        unique("retry"),
        [
            node("before", "count"),
            # Fails its first two calls: the run, then the first retry; the second retry works.
            node("fragile", "fail_times", times=2, retry={"max_attempts": 1}),
            node("after", "count"),
        ],
        [edge("before", "fragile"), edge("fragile", "after")],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id, {"x": 1})
    failed = await orchestrator.wait_for_completion(execution_id, 30)
    assert failed.status is Status.Failed
    assert read_count(tmp_path, "fragile") == 1
    with pytest.raises(PluginError) as info:
        await orchestrator.retry_execution("no-such-run")
    assert info.value.code is PluginErrorCode.ExecutionNotFound

    same_id = await orchestrator.retry_execution(execution_id)
    assert same_id == execution_id
    retried = await orchestrator.wait_for_completion(execution_id, 30)
    # The retry ran 'fragile' again (its second call, which fails too) and kept 'before'.
    assert retried.status is Status.Failed
    assert read_count(tmp_path, "fragile") == 2
    assert read_count(tmp_path, "before") == 1
    assert retried.node_states["before"]["status"] == "completed"
    assert retried.node_states["fragile"]["status"] == "failed"
    assert read_count(tmp_path, "after") == 0

    assert await orchestrator.retry_execution(execution_id) == execution_id
    completed = await orchestrator.wait_for_completion(execution_id, 30)
    assert completed.status is Status.Completed, completed.error_messages
    assert completed.node_states["fragile"]["result"] == {"calls": 3}
    assert read_count(tmp_path, "fragile") == 3
    assert read_count(tmp_path, "before") == 1  # never run again
    assert read_count(tmp_path, "after") == 1
    with pytest.raises(PluginError) as info:
        await orchestrator.retry_execution(execution_id + "-other")
    assert info.value.code is PluginErrorCode.ExecutionNotFound


async def test_skip_a_failed_node_with_an_output_then_the_rest_runs(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = workflow(
        unique("skip-failed"),
        [
            node("before", "count"),
            node("broken", "fail", retry={"max_attempts": 1}),
            node("after", "echo"),
        ],
        [edge("before", "broken"), edge("broken", "after", target_port="fixed")],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    assert (await orchestrator.wait_for_completion(execution_id, 30)).status is Status.Failed
    await orchestrator.skip_node(execution_id, "broken", {"value": 42})
    context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is Status.Completed, context.error_messages
    assert read_count(tmp_path, "before") == 1  # not run again
    assert context.node_states["broken"]["result"] == {"value": 42}
    assert context.execution_data["results"]["after"]["inputs"] == {"fixed": {"value": 42}}
    with pytest.raises(PluginError) as info:
        await orchestrator.skip_node(execution_id, "after", {})
    assert info.value.code is PluginErrorCode.InvalidState  # it completed


async def test_skip_a_running_node(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("skip-running"),
        [node("slow", "sleep", seconds=30, heartbeat_timeout=2), node("next", "echo")],
        [edge("slow", "next", target_port="slow")],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    await eventually(
        lambda: orchestrator.get_node_status(execution_id, "slow"),
        lambda s: s["status"] == "running",
    )
    with pytest.raises(PluginError) as info:
        await orchestrator.skip_node(execution_id, "ghost", {})
    assert info.value.code is PluginErrorCode.NodeNotFound
    await orchestrator.skip_node(execution_id, "slow", {"slept": 0})
    context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is Status.Completed
    assert context.node_states["slow"]["skipped_by_operator"] is True
    assert context.execution_data["results"]["next"]["inputs"] == {"slow": {"slept": 0}}
