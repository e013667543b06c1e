"""Node state is typed inside the runtime and becomes the API's dict only in ``context()``:
the dicts keep their keys and order, and a node's child execution is named without anyone
patching them (pure: fake runner and clock, no server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from engine.language.models import (
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.language.options import NodeOptions
from engine.language.validation import compile_workflow
from engine.runtime.contracts import IncomingEvent
from engine.runtime.event_run import EventRun
from engine.runtime.interpreter import Interpreter, NodeCall, NodeFailure, NodeSuccess
from engine.runtime.node_state import NodeState, call_key, key_node
from engine.runtime.scheduler import NodeStatus
from tests.helpers.builders import edge, node, workflow
from tests.unit.fakes import until

Status = WorkflowExecutionStatus


def _clock() -> datetime:
    return datetime(2026, 12, 4, tzinfo=UTC)


def test_call_keys_name_the_node_and_the_pass() -> None:
    assert call_key("a") == "a"
    assert call_key("a", 7) == "a#7"
    assert key_node("a#7") == "a"
    assert key_node("a") == "a"
    call = NodeCall("e", "w", "a", "", "p", {}, {}, NodeOptions(), pass_id=3)
    assert call.key == "a#3"
    assert NodeCall("e", "w", "a", "", "p", {}, {}, NodeOptions()).key == "a"


def test_the_dict_keeps_the_api_keys_in_order_and_leaves_out_absent_ones() -> None:
    full = NodeState(
        node_id="n",
        plugin_id="p",
        status=NodeStatus.completed,
        attempts=2,
        started_at="2026-12-04T00:00:00+00:00",
        completed_at="2026-12-04T00:00:01+00:00",
        counters={"runs": 2},
        result={"x": 1},
        error={"type": "E"},
        skipped_by_operator=True,
        child_execution_id="w/run-1/n",
    )
    assert list(full.as_dict()) == [
        "node_id",
        "plugin_id",
        "status",
        "attempts",
        "started_at",
        "completed_at",
        "counters",
        "result",
        "error",
        "skipped_by_operator",
        "child_execution_id",
    ]
    assert full.as_dict()["status"] == "completed"
    assert type(full.as_dict()["status"]) is str
    bare = NodeState(node_id="n", plugin_id="p", status=NodeStatus.pending).as_dict()
    assert bare == {
        "node_id": "n",
        "plugin_id": "p",
        "status": "pending",
        "attempts": 0,
        "started_at": None,
        "completed_at": None,
    }


async def _batch_run() -> Interpreter:
    async def runner(call: NodeCall) -> NodeSuccess:
        await asyncio.sleep(0)
        if call.node_id == "risky":
            raise NodeFailure("boom", error_type="ValueError", attempts=2)
        return NodeSuccess({"from": call.node_id})

    handled = edge("risky", "handler")
    handled.properties = {"on": "error"}
    definition = workflow(
        "w",
        [node("a"), node("risky"), node("handler"), node("never")],
        [edge("a", "risky"), handled, edge("risky", "never")],
    )
    interpreter = Interpreter(
        compile_workflow(definition),
        execution_id="w/run-1",
        input_data={},
        runner=runner,
        clock=_clock,
    )
    assert await interpreter.run() is Status.Completed
    return interpreter


async def test_a_batch_context_is_its_typed_states_as_dicts() -> None:
    interpreter = await _batch_run()
    states = interpreter.node_states()
    assert {n: s.status for n, s in states.items()} == {
        "a": NodeStatus.completed,
        "risky": NodeStatus.failed,
        "handler": NodeStatus.completed,
        "never": NodeStatus.skipped,
    }
    assert states["risky"].error == {
        "type": "ValueError",
        "message": "boom",
        "attempts": 2,
        "handled": True,
    }
    assert interpreter.context().node_states == {n: s.as_dict() for n, s in states.items()}
    assert interpreter.error_messages == interpreter.context().error_messages


def _patched_as_before(context_states: dict[str, dict[str, Any]], children: dict[str, str]) -> None:
    """What the workflow's status query did to the context's dicts before."""
    for key, child in children.items():
        state = context_states.get(key.split("#")[0])
        if state is not None:
            state["child_execution_id"] = child


async def test_children_are_named_as_the_status_query_patched_them() -> None:
    interpreter = await _batch_run()
    children = {"a": "w/run-1/a", "gone": "w/run-1/gone", "handler": "w/run-1/handler"}
    expected = interpreter.context().node_states
    _patched_as_before(expected, children)
    named = interpreter.context(children=children).node_states
    assert named == expected
    assert [list(state) for state in named.values()] == [list(s) for s in expected.values()]
    assert "child_execution_id" not in interpreter.context().node_states["a"]


async def test_a_long_run_names_the_child_of_a_nodes_last_pass() -> None:
    definition = PluginWorkflow(
        workflow_id="events",
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[
            WorkflowNode(node_id="src", plugin_id="w", node_type=WorkflowNodeType.Source),
            WorkflowNode(node_id="a", plugin_id="p"),
        ],
        connections=[
            WorkflowConnection(
                source_node="src", target_node="a", connection_type=ConnectionType.Event
            )
        ],
    )

    async def runner(call: NodeCall) -> NodeSuccess:
        return NodeSuccess({"pass": call.pass_id})

    async def watch(node_id: str, plugin_id: str, config: dict[str, Any], checkpoint: Any) -> Any:
        return checkpoint  # a source with nothing to read

    run = EventRun(
        definition,
        execution_id="events/run-1",
        state=None,
        runner=runner,
        watch=watch,
        clock=_clock,
        should_continue_as_new=lambda: False,
    )
    task = asyncio.create_task(run.run())
    run.accept([IncomingEvent(event_id="e1"), IncomingEvent(event_id="e2")])
    await until(lambda: run.state.processed == 2)
    children = {"a#1": "events/run-1/a#1", "a#2": "events/run-1/a#2"}
    expected = run.context().node_states
    _patched_as_before(expected, children)
    assert run.context(children=children).node_states == expected
    assert expected["a"]["child_execution_id"] == "events/run-1/a#2"
    states = run.node_states()
    assert states["a"].counters is not None
    assert states["a"].counters["completed"] == 2
    assert states["a"].result == {"pass": 2}
    assert run.context().node_states == {n: s.as_dict() for n, s in states.items()}
    task.cancel()
    assert await task is Status.Cancelled
