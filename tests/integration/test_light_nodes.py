"""Light nodes (``execution: local`` / ``auto``) on the real server: local activities with the
semantics of activity nodes (retries, error routes, output checks and blob offload,
cancellation, status, counters and events), and how long chains of them yield their
workflow tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.converter import default

from engine import (
    AdvancedPluginOrchestrator,
    PluginWorkflow,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.temporal.blobs import is_ref
from engine.temporal.node_runner import LOCAL_NODES_PER_TASK
from tests.helpers.builders import chain, edge, node, workflow
from tests.helpers.histories import count_events
from tests.helpers.plugins import read_count
from tests.helpers.waiting import eventually

Status = WorkflowExecutionStatus
MARKER = EventType.EVENT_TYPE_MARKER_RECORDED
SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
TIMER = EventType.EVENT_TYPE_TIMER_STARTED


async def _run(orch: AdvancedPluginOrchestrator, definition: PluginWorkflow, **input_data: Any):
    await orch.register_workflow(definition)
    execution_id = await orch.execute_workflow(definition.workflow_id, input_data or None)
    context = await orch.wait_for_completion(execution_id, 60)
    history = await orch.client.get_workflow_handle(execution_id).fetch_history()
    return execution_id, context, history


def _local_activity_ids(history: Any) -> list[str]:
    """The node ids of the history's local-activity markers, in order."""
    ids = []
    for event in history.events:
        if event.event_type == MARKER:
            attrs = event.marker_recorded_event_attributes
            if attrs.marker_name == "core_local_activity":
                data = default().payload_converter.from_payloads(
                    [attrs.details["data"].payloads[0]]
                )
                ids.append(data[0]["activity_id"])
    return ids


async def test_a_light_chain_records_markers_not_activities(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = chain(unique("light"), 5, execution="local")
    _, context, history = await _run(orchestrator, definition, seed=1)
    assert context.status is Status.Completed, context.error_messages
    assert count_events(history, SCHEDULED) == 0
    assert _local_activity_ids(history) == [f"n{i}" for i in range(5)]
    assert context.execution_data["results"]["n4"]["inputs"]["n3"]["node"] == "n3"


def _comparable(context: Any) -> dict[str, Any]:
    states = {
        node_id: {k: v for k, v in state.items() if k not in ("started_at", "completed_at")}
        for node_id, state in context.node_states.items()
    }
    data = {k: v for k, v in context.execution_data.items() if k not in ("workflow_id",)}
    return {"states": states, "data": data, "progress": context.progress}


async def test_status_counters_and_events_equal_an_activity_chains(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    name = unique("same")
    runs = {}
    for execution in ("activity", "local"):
        definition = workflow(
            f"{name}-{execution}",
            [
                node("a", "flaky", succeed_on=2, retry={"initial_interval": 0.1}),
                node("b", "echo", emit={"x": 1}),
                node(
                    "c", "fail", optional=True, retry={"max_attempts": 2, "initial_interval": 0.1}
                ),
                node("d"),
            ],
            [edge("a", "b"), edge("b", "c"), edge("b", "d")],
            execution=execution,
        )
        execution_id, context, _ = await _run(orchestrator, definition, seed=1)
        events = [event async for event in orchestrator.events(execution_id)]
        runs[execution] = (context, [(e.type, e.node_id, e.error) for e in events])
    (activity, activity_events), (local, local_events) = runs["activity"], runs["local"]
    assert local.status is Status.Failed or local.status is Status.Completed
    assert local.status is activity.status
    assert _comparable(local) == _comparable(activity)
    assert local_events == activity_events
    assert local.node_states["a"]["attempts"] == 2
    assert local.node_states["c"]["status"] == "failed"


async def test_a_failing_local_node_is_retried_then_succeeds(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    # The second backoff (2.4 s) is past the local retry threshold: a durable timer, then a
    # new local activity that goes on counting attempts.
    retry = {"initial_interval": 0.3, "backoff_coefficient": 8, "max_attempts": 4}
    definition = workflow(
        unique("retry"), [node("flaky", "flaky", succeed_on=3, execution="local", retry=retry)]
    )
    _, context, history = await _run(orchestrator, definition)
    assert context.status is Status.Completed, context.error_messages
    assert context.node_states["flaky"]["attempts"] == 3
    assert context.execution_data["results"]["flaky"] == {"attempt": 3}
    assert count_events(history, SCHEDULED) == 0
    assert count_events(history, TIMER) >= 1


async def test_a_retried_local_node_is_not_timed_out_by_its_failed_attempts_timer(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    # temporalio/sdk-rust#1454: a local activity's failed attempt keeps its start-to-close
    # timer, which cancelled the retry running when it fired (here 2 s after the first
    # attempt started: 1.5 s into the second's own 2 s). Each attempt is a local activity
    # of its own now, with its own timer; the node's attempt numbers go on counting.
    retry = {"initial_interval": 0.5, "max_attempts": 2}
    definition = workflow(
        unique("stale-timer"),
        [
            node(
                "flaky",
                "flaky",
                succeed_on=2,
                seconds=1.8,
                execution="local",
                timeout=2,
                retry=retry,
            )
        ],
    )
    _, context, history = await _run(orchestrator, definition)
    assert context.status is Status.Completed, context.error_messages
    assert context.node_states["flaky"]["attempts"] == 2
    assert context.execution_data["results"]["flaky"] == {"attempt": 2}
    assert _local_activity_ids(history) == ["flaky", "flaky"]
    assert count_events(history, TIMER) == 1  # the backoff, a durable timer


async def test_an_error_route_from_a_local_node(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    on_error = edge("charge", "refund")
    on_error.properties = {"on": "error"}
    definition = workflow(
        unique("catch"),
        [
            node("order", "echo", emit={"id": 7}),
            node(
                "charge",
                "fail",
                message="card declined",
                retry={"max_attempts": 2, "initial_interval": 0.1},
            ),
            node("ship"),
            node("refund"),
        ],
        [edge("order", "charge"), edge("charge", "ship"), on_error],
        execution="local",
    )
    _, context, history = await _run(orchestrator, definition)
    assert context.status is Status.Completed, context.error_messages
    assert context.node_states["ship"]["status"] == "skipped"
    assert context.node_states["charge"]["error"]["handled"] is True
    error = context.execution_data["results"]["refund"]["inputs"]["charge"]
    assert (error["type"], error["message"], error["attempts"]) == (
        "ValueError",
        "card declined",
        2,
    )
    assert count_events(history, SCHEDULED) == 0


async def test_large_and_bad_outputs_of_local_nodes(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    size = 3_000_000
    definition = workflow(
        unique("big"),
        [
            node("make", "big_output", size=size),
            node("check", "measure"),
            node("bad", "bad_output", kind="list", optional=True),
        ],
        [edge("make", "check", target_port="made")],
        execution="local",
    )
    _, context, history = await _run(orchestrator, definition)
    assert context.status is Status.Completed, context.error_messages
    assert is_ref(context.node_states["make"]["result"]["blob"])
    assert context.execution_data["results"]["check"]["made.blob"]["length"] == size
    assert len(history.to_json()) < 200_000  # the 3 MB never entered Temporal
    bad = context.node_states["bad"]
    assert bad["status"] == "failed"
    assert bad["error"]["type"] == "InvalidOutput"
    assert "expected a JSON object" in bad["error"]["message"]
    assert read_count(tmp_path, "bad") == 1  # not retried: checked in the activity
    assert count_events(history, SCHEDULED) == 0


async def test_cancel_during_a_local_chain(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, tmp_path: Path
) -> None:
    definition = chain(unique("cancel"), 3, "sleep", execution="local", timeout=30)
    definition.nodes[1].configuration["seconds"] = 20
    definition.nodes[0].configuration["seconds"] = 0.01
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)

    async def started() -> int:
        return read_count(tmp_path, "n1.started")

    await eventually(started, lambda n: n == 1, timeout=20)
    await orchestrator.cancel_execution(execution_id)
    # The request reaches the run when the workflow task running the local node ends: the
    # worker heartbeats that task at about 8 s (80% of its timeout), then it is delivered.
    context = await orchestrator.wait_for_completion(execution_id, 30)
    assert context.status is Status.Cancelled
    assert context.node_states["n0"]["status"] == "completed"
    assert context.node_states["n1"]["status"] == "cancelled"
    assert context.node_states["n2"]["status"] == "cancelled"
    assert read_count(tmp_path, "n1") == 0  # the plugin was cancelled, not waited out


async def test_auto_runs_light_plugins_locally(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    definition = workflow(
        unique("auto"),
        [
            node("shape", "json_transform", mapping={"x": "seed"}),
            node("light", "light_echo"),
            node("heavy", "echo"),
            node("pinned", "light_echo", execution="activity"),
        ],
        [edge("shape", "light"), edge("light", "heavy"), edge("heavy", "pinned")],
        execution="auto",
    )
    _, context, history = await _run(orchestrator, definition, seed=3)
    assert context.status is Status.Completed, context.error_messages
    assert context.node_states["shape"]["result"] == {"x": 3}
    assert _local_activity_ids(history) == ["shape", "light"]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_id
        for e in history.events
        if e.event_type == SCHEDULED
    ]
    assert scheduled == ["heavy", "pinned"]
    start = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    light = json.loads(start.data)["light_plugins"]  # what the catalog said at the start
    assert {"light_echo", "json_transform", "data_filter"} <= set(light)
    assert "echo" not in light


async def test_a_long_local_chain_yields_its_workflow_tasks(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    length = LOCAL_NODES_PER_TASK + 50
    definition = chain(unique("long"), length, "light_echo", mode="sequential", execution="auto")
    _, context, history = await _run(orchestrator, definition)
    assert context.status is Status.Completed, context.error_messages
    assert len(_local_activity_ids(history)) == length
    timers = [e.timer_started_event_attributes for e in history.events if e.event_type == TIMER]
    assert len(timers) == 1
    tasks = count_events(history, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    assert tasks >= 2


async def test_a_local_attempt_times_out_like_an_activity(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    retry = {"max_attempts": 2, "initial_interval": 0.1}
    definition = workflow(
        unique("timeout"),
        [node("slow", "sleep", seconds=5, timeout=0.5, retry=retry, optional=True)],
        execution="local",
    )
    _, context, history = await _run(orchestrator, definition)
    assert context.status is Status.Completed, context.error_messages
    error = context.node_states["slow"]["error"]
    assert error["type"] == "StartToCloseTimeout"
    assert error["message"] == "attempt timed out (StartToClose, 0.5s)"
    assert context.node_states["slow"]["attempts"] == 2
    assert count_events(history, SCHEDULED) == 0


async def test_map_shards_and_sub_workflows_inherit_what_auto_decided(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique
) -> None:
    """The light plugins recorded at the start reach child executions: a sharded map's
    items and a sub-workflow's nodes run locally too (the child's definition says auto;
    its own start input carries the parent's list)."""
    child = chain(unique("child"), 2, "light_echo", execution="auto")
    await orchestrator.register_workflow(child)
    splitter = WorkflowNode(
        node_id="split",
        plugin_id="split",
        node_type=WorkflowNodeType.Splitter,
        configuration={"items": "list.inputs.numbers", "shard_size": 2},
    )
    gather = WorkflowNode(
        node_id="gather", plugin_id="aggregate", node_type=WorkflowNodeType.Aggregator
    )
    parent = workflow(
        unique("parent"),
        [
            node("list", "echo"),
            splitter,
            node("item", "light_echo"),
            gather,
            node("inner", "subworkflow", workflow_id=child.workflow_id),
        ],
        [
            edge("list", "split"),
            edge("split", "item"),
            edge("item", "gather"),
            edge("gather", "inner"),
        ],
        execution="auto",
    )
    execution_id, context, _ = await _run(orchestrator, parent, numbers=[1, 2, 3])
    assert context.status is Status.Completed, context.error_messages
    assert context.node_states["gather"]["result"]["count"] == 3
    children = sorted(
        [
            e.id
            async for e in orchestrator.client.list_workflows(
                f"WorkflowId STARTS_WITH '{execution_id}/'"
            )
        ]
    )
    assert children == [
        f"{execution_id}/inner",
        f"{execution_id}/split-items-0-1",
        f"{execution_id}/split-items-2-2",
    ]
    for child_id in children:
        history = await orchestrator.client.get_workflow_handle(child_id).fetch_history()
        assert count_events(history, SCHEDULED) == 0, child_id
        assert _local_activity_ids(history), child_id
