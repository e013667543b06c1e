"""Compensation (sagas) without a server: which completed nodes are compensated, in what
order, with what, how it is reported, and what registration refuses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine import (
    NodeCompensation,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowEventType,
    WorkflowExecutionContext,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNodeType,
)
from engine.language.validation import compile_workflow, validate_workflow
from engine.runtime.compensation import compensation_order, retry_refusal
from engine.runtime.contracts import PluginInfo
from engine.runtime.interpreter import Interpreter, NodeCall, NodeFailure, NodeSuccess
from engine.temporal.catalog import validate_with_catalog
from tests.helpers.builders import edge, node, workflow
from tests.unit.fakes import Clock, until

Status = WorkflowExecutionStatus
Event = WorkflowEventType
Mode = WorkflowExecutionMode


class SagaRunner:
    """Runs nodes and compensations in memory: nodes in ``fail`` fail, compensations of nodes
    in ``fail_compensation`` fail, and a gate (by node id, or ``node@compensation``) holds a
    call until it is set."""

    def __init__(
        self,
        *,
        fail: tuple[str, ...] = (),
        fail_compensation: tuple[str, ...] = (),
        gates: dict[str, asyncio.Event] | None = None,
    ) -> None:
        self.fail = fail
        self.fail_compensation = fail_compensation
        self.gates = gates or {}
        self.calls: list[NodeCall] = []

    async def __call__(self, call: NodeCall) -> NodeSuccess:
        self.calls.append(call)
        key = f"{call.node_id}@compensation" if call.compensation else call.node_id
        gate = self.gates.get(key)
        if gate is not None:
            await gate.wait()
        else:
            await asyncio.sleep(0)
        if call.compensation and call.node_id in self.fail_compensation:
            raise NodeFailure("refund refused", error_type="RuntimeError", attempts=2)
        if not call.compensation and call.node_id in self.fail:
            raise NodeFailure("card declined", error_type="ValueError", attempts=1)
        if call.compensation:
            return NodeSuccess({"undone": call.node_id}, attempts=1)
        return NodeSuccess({"made_by": call.node_id, "inputs": call.inputs})

    @property
    def compensated(self) -> list[str]:
        return [c.node_id for c in self.calls if c.compensation]


def undo(plugin_id: str = "undo", **config: Any) -> NodeCompensation:
    return NodeCompensation(plugin_id=plugin_id, configuration=config)


def saga_node(node_id: str, plugin_id: str = "echo", **config: Any) -> Any:
    made = node(node_id, plugin_id, **config)
    made.compensation = undo(note=node_id)
    return made


def _interpreter(definition: PluginWorkflow, runner: SagaRunner, **kw: Any) -> Interpreter:
    return Interpreter(
        compile_workflow(definition),
        execution_id="exec-1",
        input_data={"order": 7},
        runner=runner,
        clock=Clock(),
        **kw,
    )


def _types(interpreter: Interpreter) -> list[tuple[str, str | None]]:
    return [
        (e.type.value, e.node_id)
        for e in interpreter.events()
        if e.type is not Event.execution_progress_updated
    ]


def test_order_is_the_reverse_of_completion() -> None:
    assert compensation_order(["a", "b", "c"]) == ["c", "b", "a"]
    assert compensation_order([]) == []


async def test_a_failed_chain_compensates_its_completed_nodes_backwards() -> None:
    definition = workflow(
        "saga",
        [saga_node("reserve"), saga_node("charge"), node("plain"), saga_node("ship")],
        [edge("reserve", "charge"), edge("charge", "plain"), edge("plain", "ship")],
        mode=Mode.Sequential,
    )
    runner = SagaRunner(fail=("ship",))
    interpreter = _interpreter(definition, runner)
    assert await interpreter.run() is Status.Failed
    assert runner.compensated == ["charge", "reserve"]  # not plain (none), not ship (failed)
    first = next(c for c in runner.calls if c.compensation)
    assert first.plugin_id == "undo"
    assert first.config == {"note": "charge"}
    assert first.inputs == {
        "node_id": "charge",
        "input": {"reserve": {"made_by": "reserve", "inputs": {"order": 7}}},
        "output": {"made_by": "charge", "inputs": first.inputs["input"]},
        "reason": "failed",
        "error": interpreter.error_messages[0],
    }
    assert _types(interpreter)[-6:] == [
        ("node_failed", "ship"),
        ("compensation_started", "charge"),
        ("compensation_completed", "charge"),
        ("compensation_started", "reserve"),
        ("compensation_completed", "reserve"),
        ("workflow_failed", None),
    ]
    context = interpreter.context()
    assert context.execution_data["compensation"] == {
        "status": "completed",
        "reason": "failed",
        "nodes": ["charge", "reserve"],
        "failed": [],
    }
    assert context.node_states["charge"]["compensation"]["status"] == "completed"
    assert context.node_states["charge"]["compensation"]["plugin_id"] == "undo"
    assert context.node_states["charge"]["compensation"]["attempts"] == 1
    assert "compensation" not in context.node_states["plain"]
    assert "compensation" not in context.node_states["ship"]
    assert context.error_messages == [interpreter.error_messages[0]]
    assert "node 'ship'" in context.error_messages[0]
    end = interpreter.events()[-1]
    assert end.error == context.error_messages[0]
    assert end.details == {"compensation": context.execution_data["compensation"]}


async def test_parallel_nodes_are_compensated_in_reverse_order_of_completion() -> None:
    gates = {name: asyncio.Event() for name in ("first", "second", "bad")}
    definition = workflow(
        "parallel-saga", [saga_node("second"), saga_node("first"), node("bad", "fail")]
    )
    runner = SagaRunner(fail=("bad",), gates=gates)
    interpreter = _interpreter(definition, runner)
    run = asyncio.create_task(interpreter.run())
    await until(lambda: len(runner.calls) == 3)
    gates["first"].set()
    await until(lambda: interpreter.node_status("first") == "completed")
    gates["second"].set()
    await until(lambda: interpreter.node_status("second") == "completed")
    gates["bad"].set()
    assert await run is Status.Failed
    # Definition order is second, first; completion order first, second.
    assert runner.compensated == ["second", "first"]


async def test_a_routed_failure_is_not_compensated_but_its_handler_is() -> None:
    on_error = edge("charge", "apologise")
    on_error.properties = {"on": "error"}
    definition = workflow(
        "routed",
        [
            saga_node("charge"),
            saga_node("apologise"),
            saga_node("ship"),
            node("later", "fail"),
        ],
        [edge("charge", "ship"), on_error, edge("apologise", "later")],
        mode=Mode.Sequential,
    )
    runner = SagaRunner(fail=("charge", "later"))
    interpreter = _interpreter(definition, runner)
    assert await interpreter.run() is Status.Failed
    assert interpreter.node_status("charge") == "failed"
    assert interpreter.node_status("ship") == "skipped"
    assert runner.compensated == ["apologise"]


async def test_a_failing_compensation_is_reported_and_the_next_still_runs() -> None:
    definition = workflow(
        "refund-fails",
        [saga_node("reserve"), saga_node("charge"), node("ship", "fail")],
        [edge("reserve", "charge"), edge("charge", "ship")],
        mode=Mode.Sequential,
    )
    runner = SagaRunner(fail=("ship",), fail_compensation=("charge",))
    interpreter = _interpreter(definition, runner)
    assert await interpreter.run() is Status.Failed
    assert runner.compensated == ["charge", "reserve"]
    context = interpreter.context()
    assert context.execution_data["compensation"]["status"] == "failed"
    assert context.execution_data["compensation"]["failed"] == ["charge"]
    assert context.error_messages[0].startswith("node 'ship' (plugin 'fail') failed")
    assert context.error_messages[1] == (
        "compensation of node 'charge' failed: plugin 'undo' failed after 2 attempts: "
        "RuntimeError: refund refused"
    )
    state = context.node_states["charge"]["compensation"]
    assert state["status"] == "failed"
    assert state["attempts"] == 2
    assert "refund refused" in state["error"]
    failed = [e for e in interpreter.events() if e.type is Event.compensation_failed]
    assert [e.node_id for e in failed] == ["charge"]
    assert failed[0].details == {"plugin_id": "undo", "attempts": 2}
    assert context.node_states["reserve"]["compensation"]["status"] == "completed"


async def test_a_cancelled_run_compensates_what_completed() -> None:
    gates = {"slow": asyncio.Event()}
    definition = workflow(
        "cancelled",
        [saga_node("a"), saga_node("slow")],
        [edge("a", "slow")],
        mode=Mode.Sequential,
    )
    runner = SagaRunner(gates=gates)
    interpreter = _interpreter(definition, runner)
    run = asyncio.create_task(interpreter.run())
    await until(lambda: interpreter.node_status("slow") == "running")
    run.cancel()
    assert await run is Status.Cancelled
    assert runner.compensated == ["a"]
    call = next(c for c in runner.calls if c.compensation)
    assert call.inputs["reason"] == "cancelled"
    assert call.inputs["error"] is None
    context = interpreter.context()
    assert context.error_messages == ["execution was cancelled"]
    assert context.execution_data["compensation"]["reason"] == "cancelled"
    assert _types(interpreter)[-3:] == [
        ("compensation_started", "a"),
        ("compensation_completed", "a"),
        ("workflow_cancelled", None),
    ]


async def test_a_cancellation_during_compensations_does_not_interrupt_them() -> None:
    gates = {"b@compensation": asyncio.Event()}
    definition = workflow(
        "shielded",
        [saga_node("a"), saga_node("b"), node("c", "fail")],
        [edge("a", "b"), edge("b", "c")],
        mode=Mode.Sequential,
    )
    runner = SagaRunner(fail=("c",), gates=gates)
    interpreter = _interpreter(definition, runner)
    run = asyncio.create_task(interpreter.run())
    await until(lambda: runner.compensated == ["b"])
    assert interpreter.status is Status.Running
    assert interpreter.context().execution_data["compensation"]["status"] == "running"
    with pytest.raises(PluginError, match="running the compensations"):
        interpreter.check_transition("pause")
    run.cancel()
    await asyncio.sleep(0)
    gates["b@compensation"].set()
    assert await run is Status.Failed  # it was failing: it still ends failed
    assert runner.compensated == ["b", "a"]
    summary = interpreter.context().execution_data["compensation"]
    assert summary["status"] == "completed"
    assert summary["cancel_requested"] is True  # asked for, recorded, and it stopped nothing


async def test_nothing_is_compensated_when_the_run_completes_or_the_patch_says_no() -> None:
    definition = workflow(
        "fine", [saga_node("a"), saga_node("b")], [edge("a", "b")], mode=Mode.Sequential
    )
    runner = SagaRunner()
    interpreter = _interpreter(definition, runner)
    assert await interpreter.run() is Status.Completed
    assert runner.compensated == []
    assert "compensation" not in interpreter.context().execution_data

    failing = workflow(
        "old", [saga_node("a"), node("b", "fail")], [edge("a", "b")], mode=Mode.Sequential
    )
    asked: list[bool] = []
    runner = SagaRunner(fail=("b",))
    interpreter = _interpreter(failing, runner, may_compensate=lambda: asked.append(True) or False)
    assert await interpreter.run() is Status.Failed
    assert runner.compensated == []
    assert asked == [True]
    assert "compensation" not in interpreter.context().execution_data


async def test_the_patch_is_not_asked_when_there_is_nothing_to_compensate() -> None:
    definition = workflow(
        "plain", [node("a"), node("b", "fail")], [edge("a", "b")], mode=Mode.Sequential
    )
    asked: list[bool] = []
    interpreter = _interpreter(
        definition, SagaRunner(fail=("b",)), may_compensate=lambda: asked.append(True) or True
    )
    assert await interpreter.run() is Status.Failed
    assert asked == []


async def test_a_node_an_operator_skipped_is_not_compensated() -> None:
    gates = {"a": asyncio.Event()}
    definition = workflow(
        "skipped",
        [saga_node("a"), saga_node("b"), node("c", "fail")],
        [edge("a", "b"), edge("b", "c")],
        mode=Mode.Sequential,
    )
    runner = SagaRunner(fail=("c",), gates=gates)
    interpreter = _interpreter(definition, runner)
    run = asyncio.create_task(interpreter.run())
    await until(lambda: [c.node_id for c in runner.calls] == ["a"])
    interpreter.skip_node("a", {"given": True})
    assert await run is Status.Failed
    assert runner.compensated == ["b"]


async def test_compensable_nodes_travel_across_continue_as_new() -> None:
    from engine.runtime.lifecycle import ContinueAsNew

    definition = workflow(
        "carried",
        [saga_node("a"), saga_node("b"), node("c", "fail")],
        [edge("a", "b"), edge("b", "c")],
        mode=Mode.Sequential,
    )
    runner = SagaRunner(fail=("c",))
    done: list[str] = []
    first = _interpreter(
        definition,
        runner,
        should_continue_as_new=lambda: done.append("asked") or len(done) >= 2,
    )
    with pytest.raises(ContinueAsNew) as carried:
        await first.run()
    state = carried.value.state
    assert [item["node_id"] for item in state.compensable] == ["a", "b"]
    assert state.compensable[0]["input"] == {"order": 7}
    second_runner = SagaRunner(fail=("c",))
    second = _interpreter(definition, second_runner, carried=state)
    assert await second.run() is Status.Failed
    assert second_runner.compensated == ["b", "a"]
    call = second_runner.calls[-1]
    assert call.inputs["output"] == {"made_by": "a", "inputs": {"order": 7}}


def test_retry_refusal_names_the_compensated_nodes() -> None:
    plain = WorkflowExecutionContext(execution_id="e")
    assert retry_refusal("e", plain) is None
    compensated = WorkflowExecutionContext(
        execution_id="e",
        execution_data={"compensation": {"status": "failed", "nodes": ["b", "a"], "failed": ["b"]}},
    )
    refusal = retry_refusal("e", compensated)
    assert refusal is not None
    assert "cannot retry execution 'e'" in refusal
    assert "'b', 'a'" in refusal
    assert "execute_workflow" in refusal


# -- registration ---------------------------------------------------------------------------


def _problems(definition: PluginWorkflow) -> str:
    with pytest.raises(PluginError) as raised:
        validate_workflow(definition)
    assert raised.value.code is PluginErrorCode.InvalidWorkflowStructure
    return raised.value.message


def test_registration_checks_the_compensation() -> None:
    ok = workflow("ok", [saga_node("a")], mode=Mode.Sequential)
    validate_workflow(ok)

    def with_compensation(compensation: NodeCompensation) -> PluginWorkflow:
        made = node("a")
        made.compensation = compensation
        return workflow("bad", [made], mode=Mode.Sequential)

    assert "node 'a' compensation has no plugin_id" in _problems(
        with_compensation(NodeCompensation())
    )
    assert "'wait' is one of the engine's own nodes" in _problems(
        with_compensation(undo("wait", seconds=1))
    )
    assert "plugin_id 'un do' must be printable ASCII" in _problems(
        with_compensation(undo("un do"))
    )
    message = _problems(with_compensation(undo(retry={"max_attempts": 0})))
    assert "node 'a' compensation configuration: retry.max_attempts" in message
    assert "'optional' does not apply" in _problems(with_compensation(undo(optional=True)))
    assert "max_parallelism belongs in global_configuration" in _problems(
        with_compensation(undo(max_parallelism=3))
    )
    assert "compensation.configuration" in _problems(with_compensation(undo(bad=float("nan"))))


def test_long_running_modes_take_no_compensation() -> None:
    source = node("in", "numbers")
    source.node_type = WorkflowNodeType.Source
    definition = workflow(
        "events", [source, saga_node("a")], [edge("in", "a")], mode=Mode.EventDriven
    )
    message = _problems(definition)
    assert "node 'a': compensation runs in Sequential, Parallel and Conditional" in message


def test_nodes_of_a_map_take_no_compensation() -> None:
    split = node("split", "split")
    split.node_type = WorkflowNodeType.Splitter
    split.compensation = undo()
    gather = saga_node("gather", "aggregate")
    gather.node_type = WorkflowNodeType.Aggregator
    definition = workflow(
        "map",
        [node("list", emit={"items": [1, 2]}), split, saga_node("body"), gather],
        [edge("list", "split"), edge("split", "body"), edge("body", "gather")],
    )
    message = _problems(definition)
    assert "node 'body' compensation: the node belongs to the map of Splitter 'split'" in message
    assert "node 'gather' compensation: the node belongs to the map" in message
    assert "node 'split'" not in message


def test_the_catalog_checks_the_compensation_plugin_and_configuration() -> None:
    schema = {
        "type": "object",
        "properties": {"reason": {"type": "string"}},
        "additionalProperties": False,
    }
    catalog = {
        "echo": PluginInfo(plugin_id="echo"),
        "undo": PluginInfo(plugin_id="undo", config_schema=schema),
    }
    good = workflow("good", [node("a")], mode=Mode.Sequential)
    good.nodes[0].compensation = undo(reason="because", retry={"max_attempts": 2})
    validate_with_catalog(good, catalog)

    unknown = workflow("unknown", [node("a")], mode=Mode.Sequential)
    unknown.nodes[0].compensation = undo("refund")
    with pytest.raises(PluginError) as raised:
        validate_with_catalog(unknown, catalog)
    assert raised.value.code is PluginErrorCode.PluginNotFound
    assert "node 'a' compensation uses plugin 'refund', which no worker" in raised.value.message
    assert "offered: echo, undo" in raised.value.message

    misconfigured = workflow("misconfigured", [node("a")], mode=Mode.Sequential)
    misconfigured.nodes[0].compensation = undo(reason=3, why="typo")
    with pytest.raises(PluginError) as raised:
        validate_with_catalog(misconfigured, catalog)
    assert raised.value.code is PluginErrorCode.InvalidWorkflowStructure
    assert "node 'a' compensation (plugin 'undo') configuration:" in raised.value.message
    assert "reason: 3 is not of type 'string'" in raised.value.message


def test_the_compensation_round_trips_through_json() -> None:
    definition = workflow("json", [saga_node("a")], mode=Mode.Sequential)
    data = definition.to_json()
    assert data["nodes"][0]["compensation"] == {
        "plugin_id": "undo",
        "configuration": {"note": "a"},
    }
    assert PluginWorkflow.from_json(data) == definition
    data["nodes"][0]["compensation"]["plugin"] = "typo"
    with pytest.raises(PluginError, match=r"compensation\.plugin"):
        PluginWorkflow.from_json(data)
