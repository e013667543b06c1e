"""The pure interpreter and scheduler, driven by an in-memory runner (no server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from engine import (
    ConnectionType,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowEventType,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
)
from engine.language.validation import compile_workflow
from engine.runtime.interpreter import Interpreter, NodeCall, NodeFailure, NodeSuccess
from tests.helpers.builders import chain, edge, node, workflow

Status = WorkflowExecutionStatus
Kind = ConnectionType
Mode = WorkflowExecutionMode


class FakeRunner:
    """Records calls; nodes named in ``fail`` fail, ``outputs`` overrides outputs, and
    ``gates`` hold nodes until released."""

    def __init__(
        self,
        outputs: dict[str, dict[str, Any]] | None = None,
        fail: set[str] | None = None,
        gates: dict[str, asyncio.Event] | None = None,
    ) -> None:
        self.outputs = outputs or {}
        self.fail = fail or set()
        self.gates = gates or {}
        self.calls: list[NodeCall] = []
        self.running: set[str] = set()
        self.max_running = 0
        self.cancelled: list[str] = []

    async def __call__(self, call: NodeCall) -> NodeSuccess:
        self.calls.append(call)
        self.running.add(call.node_id)
        self.max_running = max(self.max_running, len(self.running))
        try:
            if call.node_id in self.gates:
                await self.gates[call.node_id].wait()
            else:
                await asyncio.sleep(0)
            if call.node_id in self.fail:
                raise NodeFailure("boom", error_type="ValueError", attempts=3)
            return NodeSuccess(self.outputs.get(call.node_id, {"from": call.node_id}), attempts=1)
        except asyncio.CancelledError:
            self.cancelled.append(call.node_id)
            raise
        finally:
            self.running.discard(call.node_id)

    @property
    def order(self) -> list[str]:
        return [c.node_id for c in self.calls]


def _interpreter(
    definition: PluginWorkflow, runner: FakeRunner, input_data: dict[str, Any] | None = None
) -> Interpreter:
    return Interpreter(
        compile_workflow(definition),
        execution_id="exec-1",
        input_data=input_data or {},
        runner=runner,
        clock=lambda: datetime.now(UTC),
    )


async def _run(
    definition: PluginWorkflow, runner: FakeRunner | None = None, **kw: Any
) -> tuple[Interpreter, FakeRunner]:
    runner = runner or FakeRunner()
    interpreter = _interpreter(definition, runner, **kw)
    await interpreter.run()
    return interpreter, runner


def _states(interpreter: Interpreter) -> dict[str, str]:
    return {n: s["status"] for n, s in interpreter.context().node_states.items()}


async def test_sequential_runs_topological_order_with_ties_by_node_order() -> None:
    # c and b are both ready after a; b comes first in `nodes`, so it runs first.
    definition = workflow(
        "w",
        [node("d"), node("a"), node("b"), node("c")],
        [edge("a", "c"), edge("a", "b"), edge("b", "d"), edge("c", "d", target_port="c")],
        mode=Mode.Sequential,
    )
    interpreter, runner = await _run(definition)
    assert runner.order == ["a", "b", "c", "d"]
    assert runner.max_running == 1
    assert interpreter.status is Status.Completed


async def test_parallel_respects_max_parallelism() -> None:
    nodes = [node(f"n{i}") for i in range(10)]
    gates = {f"n{i}": asyncio.Event() for i in range(10)}
    runner = FakeRunner(gates=gates)
    interpreter = _interpreter(workflow("w", nodes, max_parallelism=3), runner)
    task = asyncio.create_task(interpreter.run())
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(runner.running) == 3
    for gate in gates.values():
        gate.set()
    await task
    assert runner.max_running == 3
    assert interpreter.status is Status.Completed


async def test_inputs_by_port_or_source_and_root_input_data() -> None:
    definition = workflow(
        "w",
        [node("a"), node("b"), node("c")],
        [edge("a", "c", target_port="left"), edge("b", "c"), edge("a", "b", Kind.Dependency)],
    )
    runner = FakeRunner(outputs={"a": {"v": 1, "part": {"x": 2}}})
    interpreter, runner = await _run(definition, runner, input_data={"seed": 7})
    calls = {c.node_id: c for c in runner.calls}
    assert calls["a"].inputs == {"seed": 7}  # root: the execution's input
    assert calls["b"].inputs == {"seed": 7}  # only a Dependency edge: still input_data
    assert calls["c"].inputs == {"left": {"v": 1, "part": {"x": 2}}, "b": {"from": "b"}}
    assert interpreter.context().execution_data["results"] == {"c": {"from": "c"}}


async def test_source_port_carries_one_key() -> None:
    definition = workflow("w", [node("a"), node("b")], [edge("a", "b", source_port="part")])
    runner = FakeRunner(outputs={"a": {"part": [1, 2], "other": 3}})
    _, runner = await _run(definition, runner)
    assert runner.calls[1].inputs == {"a": [1, 2]}


async def test_missing_source_port_fails_the_node_clearly() -> None:
    definition = workflow("w", [node("a"), node("b")], [edge("a", "b", source_port="part")])
    interpreter, _ = await _run(definition)
    assert interpreter.status is Status.Failed
    assert "has no key 'part'" in interpreter.context().error_messages[0]


async def test_conditions_route_and_skips_propagate() -> None:
    definition = workflow(
        "w",
        [node("check"), node("good"), node("bad"), node("after_bad"), node("join")],
        [
            edge("check", "good", condition="file_valid == true"),
            edge("check", "bad", condition="file_valid == false"),
            edge("bad", "after_bad"),
            edge("good", "join"),
            edge("after_bad", "join", target_port="other"),
        ],
        mode=Mode.Conditional,
    )
    runner = FakeRunner(outputs={"check": {"file_valid": True}})
    interpreter, runner = await _run(definition, runner)
    assert runner.order == ["check", "good", "join"]
    assert _states(interpreter) == {
        "check": "completed",
        "good": "completed",
        "bad": "skipped",
        "after_bad": "skipped",
        "join": "completed",
    }
    assert runner.calls[-1].inputs == {"good": {"from": "good"}}  # skipped input absent


async def test_all_inputs_untaken_skips_the_join() -> None:
    definition = workflow(
        "w",
        [node("a"), node("b"), node("c")],
        [edge("a", "b", condition="go == true"), edge("b", "c")],
    )
    interpreter, runner = await _run(definition, FakeRunner(outputs={"a": {"go": False}}))
    assert runner.order == ["a"]
    assert _states(interpreter)["c"] == "skipped"
    assert interpreter.status is Status.Completed
    assert interpreter.context().progress == 1.0


async def test_diamond_join_runs_once_after_both_branches() -> None:
    gates = {"slow": asyncio.Event()}
    definition = workflow(
        "w",
        [node("top"), node("fast"), node("slow"), node("join")],
        [
            edge("top", "fast"),
            edge("top", "slow"),
            edge("fast", "join", target_port="f"),
            edge("slow", "join", target_port="s"),
        ],
    )
    runner = FakeRunner(gates=gates)
    interpreter = _interpreter(definition, runner)
    task = asyncio.create_task(interpreter.run())
    for _ in range(10):
        await asyncio.sleep(0)
    assert "join" not in runner.order  # not early
    gates["slow"].set()
    await task
    assert runner.order.count("join") == 1
    assert set(runner.calls[-1].inputs) == {"f", "s"}


async def test_condition_error_fails_the_run_naming_the_connection() -> None:
    definition = workflow("w", [node("a"), node("b")], [edge("a", "b", condition="nope == 1")])
    interpreter, _ = await _run(definition)
    message = interpreter.context().error_messages[0]
    assert interpreter.status is Status.Failed
    assert "unknown variable 'nope'" in message
    assert "'a' -> 'b'" in message


async def test_a_given_output_that_cannot_be_routed_fails_the_run_before_any_node() -> None:
    # An EventDriven pass starts with its source completed by the event; a condition about a
    # field the event lacks used to raise from the constructor and fail the workflow task
    # over and over (the run wedged); the pass fails now, saying why.
    definition = workflow(
        "w", [node("src"), node("b")], [edge("src", "b", condition="order.total > 1")]
    )
    runner = FakeRunner()
    interpreter = Interpreter(
        compile_workflow(definition),
        execution_id="exec-1",
        input_data={},
        runner=runner,
        clock=lambda: datetime.now(UTC),
        completed={"src": {"id": 7}},
        pass_id=1,
    )
    assert await interpreter.run() is Status.Failed
    assert runner.calls == []
    assert "unknown variable 'order'" in interpreter.error_messages[0]
    assert "'src' -> 'b'" in interpreter.error_messages[0]


async def test_failure_cancels_running_nodes_and_starts_nothing_new() -> None:
    gates = {"slow": asyncio.Event()}
    definition = workflow(
        "w",
        [node("bad"), node("slow"), node("after")],
        [edge("bad", "after")],
    )
    runner = FakeRunner(fail={"bad"}, gates=gates)
    interpreter, runner = await _run(definition, runner)
    assert interpreter.status is Status.Failed
    assert runner.cancelled == ["slow"]
    states = _states(interpreter)
    assert states == {"bad": "failed", "slow": "cancelled", "after": "cancelled"}
    context = interpreter.context()
    assert context.error_messages == [
        "node 'bad' (plugin 'echo') failed after 3 attempts: ValueError: boom"
    ]
    assert context.node_states["bad"]["error"] == {
        "type": "ValueError",
        "message": "boom",
        "attempts": 3,
    }


async def test_pause_stops_new_nodes_and_resume_continues() -> None:
    gates = {"n0": asyncio.Event()}
    runner = FakeRunner(gates=gates)
    interpreter = _interpreter(chain("w", 3), runner)
    task = asyncio.create_task(interpreter.run())
    await asyncio.sleep(0)
    interpreter.pause()
    assert interpreter.status is Status.Paused
    with pytest.raises(PluginError) as info:
        interpreter.pause()
    assert info.value.code is PluginErrorCode.InvalidState
    gates["n0"].set()  # the running node finishes while paused and is recorded
    for _ in range(10):
        await asyncio.sleep(0)
    assert runner.order == ["n0"]
    assert interpreter.context().node_states["n0"]["status"] == "completed"
    interpreter.resume()
    await task
    assert runner.order == ["n0", "n1", "n2"]
    assert interpreter.status is Status.Completed
    types = [e.type for e in interpreter.events()]
    assert types.index(WorkflowEventType.workflow_paused) < types.index(
        WorkflowEventType.workflow_resumed
    )


async def test_resume_when_running_is_invalid() -> None:
    interpreter = _interpreter(chain("w", 1), FakeRunner())
    with pytest.raises(PluginError, match="cannot resume execution 'exec-1': it is pending"):
        interpreter.resume()


async def test_cancel_cancels_running_nodes() -> None:
    gates = {"n0": asyncio.Event()}
    runner = FakeRunner(gates=gates)
    interpreter = _interpreter(chain("w", 2), runner)
    task = asyncio.create_task(interpreter.run())
    await asyncio.sleep(0)
    task.cancel()
    status = await task
    assert status is Status.Cancelled
    assert runner.cancelled == ["n0"]
    assert _states(interpreter) == {"n0": "cancelled", "n1": "cancelled"}
    assert interpreter.events()[-1].type is WorkflowEventType.workflow_cancelled


async def test_events_are_ordered_gap_free_and_progress_never_decreases() -> None:
    definition = workflow(
        "w",
        [node("a"), node("b"), node("c")],
        [edge("a", "b", condition="x == 1"), edge("a", "c")],
    )
    interpreter, _ = await _run(definition, FakeRunner(outputs={"a": {"x": 2}}))
    events = interpreter.events()
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].type is WorkflowEventType.workflow_started
    assert events[-1].type is WorkflowEventType.workflow_completed
    assert events[-1].result == interpreter.context().execution_data["results"]
    progress = [
        e.progress for e in events if e.type is WorkflowEventType.execution_progress_updated
    ]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    completed = [e for e in events if e.type is WorkflowEventType.node_completed]
    assert completed[0].result == {"x": 2}
    assert interpreter.events(after=3) == events[3:]


async def test_event_driven_and_streaming_are_refused_by_the_batch_interpreter() -> None:
    from engine import WorkflowNode, WorkflowNodeType

    source = WorkflowNode(node_id="s", plugin_id="p", node_type=WorkflowNodeType.Source)
    for mode in (Mode.EventDriven, Mode.Streaming):
        with pytest.raises(PluginError) as info:
            _interpreter(workflow("w", [source], mode=mode), FakeRunner())
        assert info.value.code is PluginErrorCode.ExecutionModeNotSupported


async def test_node_options_and_plugin_config_are_resolved() -> None:
    definition = workflow(
        "w",
        [node("a", retry={"max_attempts": 5}, timeout=7, url="x")],
        retry={"initial_interval": 2},
        heartbeat_timeout=9,
        shared="s",
    )
    _, runner = await _run(definition)
    call = runner.calls[0]
    assert call.config == {"url": "x", "shared": "s"}  # reserved keys removed
    assert call.options.retry.max_attempts == 5
    assert call.options.retry.initial_interval == 2
    assert call.options.timeout == 7
    assert call.options.heartbeat_timeout == 9


async def test_large_graph_plans_quickly() -> None:
    import time

    started = time.perf_counter()
    interpreter, runner = await _run(chain("w", 2000))
    assert interpreter.status is Status.Completed
    assert len(runner.calls) == 2000
    assert time.perf_counter() - started < 10


async def test_decision_default_route_is_taken_when_no_condition_matches() -> None:
    def decision(kind: str) -> PluginWorkflow:
        default = edge("route", "other")
        default.connection_type = Kind.Control
        default.properties = {"default": True}
        return workflow(
            "w",
            [node("route"), node("a"), node("b"), node("other")],
            [
                edge("route", "a", condition="kind == 'a'"),
                edge("route", "b", condition="kind == 'b'"),
                default,
            ],
        )

    for kind, expected in (("a", ["route", "a"]), ("b", ["route", "b"]), ("z", ["route", "other"])):
        _, runner = await _run(decision(kind), FakeRunner(outputs={"route": {"kind": kind}}))
        assert runner.order == expected


async def test_error_routes_carry_the_error_and_the_run_goes_on() -> None:
    handler = edge("risky", "handler")
    handler.properties = {"on": "error"}
    definition = workflow(
        "w",
        [node("start"), node("risky"), node("next"), node("handler")],
        [edge("start", "risky"), edge("risky", "next"), handler],
    )
    interpreter, runner = await _run(definition, FakeRunner(fail={"risky"}))
    assert interpreter.status is Status.Completed
    assert runner.order == ["start", "risky", "handler"]
    states = _states(interpreter)
    assert states["risky"] == "failed"
    assert states["next"] == "skipped"
    error = runner.calls[-1].inputs["risky"]
    assert error["type"] == "ValueError"
    assert error["message"] == "boom"
    assert error["attempts"] == 3
    assert error["node_id"] == "risky"
    assert error["input"] == {"start": {"from": "start"}}
    assert interpreter.context().node_states["risky"]["error"]["handled"] is True
    assert interpreter.context().error_messages == []
    # When the node succeeds, the error route is not taken.
    _, runner = await _run(definition)
    assert runner.order == ["start", "risky", "next"]


async def test_an_optional_node_failing_lets_the_run_go_on() -> None:
    definition = workflow(
        "w",
        [node("a"), node("enrich", optional=True), node("store")],
        [
            edge("a", "enrich"),
            edge("enrich", "store", target_port="extra"),
            edge("a", "store", target_port="base"),
        ],
    )
    interpreter, runner = await _run(definition, FakeRunner(fail={"enrich"}))
    assert interpreter.status is Status.Completed
    assert runner.order == ["a", "enrich", "store"]
    assert runner.calls[-1].inputs == {"base": {"from": "a"}}  # nothing from the failed node
    assert runner.calls[1].config == {}  # 'optional' is the engine's, not the plugin's
