"""Nodes the engine runs itself: aggregate, wait, approval, subworkflow."""

from __future__ import annotations

import asyncio

import pytest

from engine import (
    AdvancedPluginOrchestrator,
    PluginError,
    PluginErrorCode,
    WorkflowExecutionStatus,
)
from tests.helpers.builders import chain, edge, node, workflow
from tests.helpers.waiting import eventually

Status = WorkflowExecutionStatus
Code = PluginErrorCode


async def _run(orchestrator: AdvancedPluginOrchestrator, definition, input_data=None):  # type: ignore[no-untyped-def]
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id, input_data)
    return execution_id, await orchestrator.wait_for_completion(execution_id, 60)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("list", {"items": [{"v": 1}, {"v": 2}], "count": 2}),
        ("merge", {"v": 2}),
        ("first", {"first": {"v": 1}}),
        ("count", {"count": 2}),
    ],
)
async def test_aggregate_strategies(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, strategy: str, expected: dict
) -> None:
    definition = workflow(
        unique(f"agg-{strategy}"),
        [
            node("a", "echo", emit={"v": 1}),
            node("b", "echo", emit={"v": 2}),
            node("join", "aggregate", strategy=strategy),
        ],
        [edge("a", "join", target_port="x"), edge("b", "join", target_port="y")],
    )
    _, context = await _run(orchestrator, definition)
    result = context.execution_data["results"]["join"]
    simplified = {
        "list": lambda r: {"items": [{"v": i["v"]} for i in r["items"]], "count": r["count"]},
        "merge": lambda r: {"v": r["v"]},
        "first": lambda r: {"first": {"v": r["first"]["v"]}},
        "count": lambda r: r,
    }[strategy](result)
    assert simplified == expected


async def test_wait_is_a_durable_timer(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("wait"),
        [node("pause", "wait", seconds=1.5), node("after")],
        [edge("pause", "after")],
    )
    started = asyncio.get_running_loop().time()
    execution_id, context = await _run(orchestrator, definition)
    assert context.status is Status.Completed
    assert asyncio.get_running_loop().time() - started >= 1.5
    history = await orchestrator.client.get_workflow_handle(execution_id).fetch_history()
    kinds = {event.WhichOneof("attributes") for event in history.events}
    assert "timer_started_event_attributes" in kinds  # a Temporal timer, not an activity
    assert context.node_states["pause"]["result"]["waited_seconds"] == 1.5


async def test_approval_routes_by_the_decision(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("approval"),
        [node("ask", "approval", prompt="ship it?"), node("ship"), node("stop")],
        [
            edge("ask", "ship", condition="approved == true"),
            edge("ask", "stop", condition="approved == false"),
        ],
    )
    await orchestrator.register_workflow(definition)
    for approved, runs, skipped in ((True, "ship", "stop"), (False, "stop", "ship")):
        execution_id = await orchestrator.execute_workflow(definition.workflow_id)
        with pytest.raises(PluginError) as info:
            await orchestrator.approve_node(execution_id, "ship")
        assert info.value.code is Code.InvalidState
        await eventually(
            lambda execution_id=execution_id: orchestrator.get_execution_status(execution_id),
            lambda c: c.execution_data.get("awaiting_approval") == ["ask"],
        )
        await orchestrator.approve_node(
            execution_id, "ask", approved, by="ada", comment="ok", data={"ticket": 7}
        )
        context = await orchestrator.wait_for_completion(execution_id, 30)
        assert context.node_states[runs]["status"] == "completed"
        assert context.node_states[skipped]["status"] == "skipped"
        decision = context.node_states["ask"]["result"]
        assert decision == {
            "approved": approved,
            "timed_out": False,
            "by": "ada",
            "comment": "ok",
            "data": {"ticket": 7},
        }
        with pytest.raises(PluginError) as info:
            await orchestrator.approve_node(execution_id, "ask")
        assert info.value.code is Code.InvalidState


async def test_approval_times_out(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("expiring"), [node("ask", "approval", expires_after=1, on_timeout="fail")]
    )
    _, context = await _run(orchestrator, definition)
    assert context.status is Status.Failed
    assert context.node_states["ask"]["error"]["type"] == "ApprovalTimeout"


async def test_subworkflow_runs_a_registered_workflow_as_a_child(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    child = chain(unique("child"), 2)
    await orchestrator.register_workflow(child)
    parent = workflow(
        unique("parent"),
        [
            node("prepare", "echo", emit={"x": 1}),
            node("inner", "subworkflow", workflow_id=child.workflow_id),
        ],
        [edge("prepare", "inner", target_port="prepared")],
    )
    execution_id, context = await _run(orchestrator, parent)
    assert context.status is Status.Completed, context.error_messages
    output = context.execution_data["results"]["inner"]
    assert output["execution_id"] == f"{execution_id}/inner"
    assert output["results"]["n1"]["node"] == "n1"
    assert output["results"]["n1"]["inputs"]["n0"]["inputs"]["prepared"]["x"] == 1
    child_context = await orchestrator.get_execution_status(output["execution_id"])
    assert child_context.status is Status.Completed


async def test_subworkflow_failure_and_cancellation_pass_through(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    failing = workflow(unique("failing-child"), [node("x", "fail", retry={"max_attempts": 1})])
    slow = workflow(unique("slow-child"), [node("s", "sleep", seconds=30, heartbeat_timeout=2)])
    for definition in (failing, slow):
        await orchestrator.register_workflow(definition)
    parent = workflow(
        unique("fails"), [node("inner", "subworkflow", workflow_id=failing.workflow_id)]
    )
    _, context = await _run(orchestrator, parent)
    assert context.status is Status.Failed
    assert "child execution" in context.error_messages[0]
    assert "ValueError: boom" in context.error_messages[0]

    parent = workflow(
        unique("cancels"), [node("inner", "subworkflow", workflow_id=slow.workflow_id)]
    )
    await orchestrator.register_workflow(parent)
    execution_id = await orchestrator.execute_workflow(parent.workflow_id)
    await eventually(
        lambda: orchestrator.get_node_status(execution_id, "inner"),
        lambda s: s.get("child_execution_id") == f"{execution_id}/inner",
    )
    child_id = f"{execution_id}/inner"
    await eventually(
        lambda: orchestrator.get_node_status(child_id, "s"), lambda s: s["status"] == "running"
    )
    await orchestrator.cancel_execution(execution_id)
    assert (await orchestrator.wait_for_completion(execution_id, 30)).status is Status.Cancelled
    assert (await orchestrator.wait_for_completion(child_id, 30)).status is Status.Cancelled


async def test_subworkflow_cycles_and_unknown_children_are_refused(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    a_id, b_id = unique("a"), unique("b")
    await orchestrator.register_workflow(
        workflow(a_id, [node("call_b", "subworkflow", workflow_id=b_id)])
    )
    with pytest.raises(PluginError) as info:
        await orchestrator.execute_workflow(a_id)
    assert info.value.code is Code.WorkflowNotFound
    await orchestrator.register_workflow(
        workflow(b_id, [node("call_a", "subworkflow", workflow_id=a_id)])
    )
    with pytest.raises(PluginError) as info:
        await orchestrator.execute_workflow(a_id)
    assert info.value.code is Code.CircularDependency
    assert f"{a_id} -> {b_id} -> {a_id}" in info.value.message
    with pytest.raises(PluginError) as info:
        await orchestrator.register_workflow(workflow(unique("bad"), [node("w", "wait")]))
    assert "set exactly one of 'seconds' and 'until'" in info.value.message
