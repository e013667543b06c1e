"""A batch run that continues as new goes on exactly where it stopped (no server).

Each graph runs once in one go and once split into several "Temporal runs": the interpreter
drains, raises ``ContinueAsNew``, its state goes through JSON (as Temporal carries it) into a new
interpreter, and so on. Both must call the same nodes with the same inputs, in the same
order, and end with the same statuses, results and events.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from engine import PluginWorkflow, WorkflowExecutionMode, WorkflowExecutionStatus
from engine.language.validation import compile_workflow
from engine.runtime import interpreter as interpreter_module
from engine.runtime.contracts import BatchRunState
from engine.runtime.interpreter import (
    ContinueAsNew,
    Interpreter,
    NodeCall,
    NodeFailure,
    NodeSuccess,
)
from tests.helpers.builders import chain, edge, node, workflow

Status = WorkflowExecutionStatus
Mode = WorkflowExecutionMode


class Runner:
    """Deterministic outputs; nodes in ``fail`` fail; records each call's inputs."""

    def __init__(
        self,
        outputs: dict[str, dict[str, Any]],
        fail: set[str],
        gate: asyncio.Event | None = None,
    ) -> None:
        self.outputs = outputs
        self.fail = fail
        self.gate = gate
        self.entered = asyncio.Event()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, call: NodeCall) -> NodeSuccess:
        self.calls.append((call.node_id, call.inputs))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if call.node_id in self.fail:
            raise NodeFailure("boom", error_type="ValueError", attempts=2)
        return NodeSuccess(self.outputs.get(call.node_id, {"from": call.node_id}), attempts=1)


def _new(
    definition: PluginWorkflow,
    runner: Runner,
    carried: BatchRunState | None = None,
    every: int | None = None,
) -> Interpreter:
    started = len(runner.calls)
    return Interpreter(
        compile_workflow(definition),
        execution_id="exec-1",
        input_data={"seed": 1},
        runner=runner,
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        carried=carried,
        should_continue_as_new=(
            None if every is None else lambda: len(runner.calls) - started >= every
        ),
    )


async def _in_runs(
    definition: PluginWorkflow, runner: Runner, every: int
) -> tuple[Interpreter, int]:
    """Run to the end, continuing as new after every ``every`` node calls."""
    carried: BatchRunState | None = None
    runs = 0
    while True:
        runs += 1
        interpreter = _new(definition, runner, carried, every)
        try:
            await interpreter.run()
        except ContinueAsNew as over:
            carried = BatchRunState.model_validate_json(over.state.model_dump_json())
            continue
        return interpreter, runs


def _summary(interpreter: Interpreter) -> dict[str, Any]:
    context = interpreter.context()
    events = [(e.sequence, e.type.value, e.node_id, e.error) for e in interpreter.events(0, 10**6)]
    return {
        "status": context.status,
        "nodes": {
            n: (s["status"], s["attempts"], s.get("result"), s.get("error"))
            for n, s in context.node_states.items()
        },
        "results": context.execution_data.get("results"),
        "errors": context.error_messages,
        "progress": context.progress,
        "events": events,
    }


def _graphs() -> dict[str, tuple[PluginWorkflow, dict[str, dict[str, Any]], set[str]]]:
    handler = edge("risky", "handler")
    handler.properties = {"on": "error"}
    return {
        "sequential chain": (chain("c", 12), {}, set()),
        "parallel fan-out": (
            workflow(
                "f",
                [node("r"), *(node(f"l{i}") for i in range(9)), node("j")],
                [
                    *(edge("r", f"l{i}") for i in range(9)),
                    *(edge(f"l{i}", "j", target_port=f"p{i}") for i in range(9)),
                ],
                mode=Mode.Parallel,
                max_parallelism=3,
            ),
            {},
            set(),
        ),
        "conditions, skips, ports, error route": (
            workflow(
                "k",
                [
                    node("check"),
                    node("good"),
                    node("bad"),
                    node("after_bad"),
                    node("risky"),
                    node("next"),
                    node("handler"),
                    node("join"),
                ],
                [
                    edge("check", "good", condition="file_valid == true"),
                    edge("check", "bad", condition="file_valid == false"),
                    edge("bad", "after_bad"),
                    edge("good", "risky", source_port="count"),
                    edge("risky", "next"),
                    handler,
                    edge("handler", "join"),
                    edge("after_bad", "join", target_port="other"),
                ],
                mode=Mode.Conditional,
            ),
            {"check": {"file_valid": True}, "good": {"count": 3}},
            {"risky"},
        ),
        "a failure ends the run": (chain("x", 8), {}, {"n5"}),
    }


@pytest.mark.parametrize("name", list(_graphs()))
@pytest.mark.parametrize("every", [1, 2, 3])
async def test_continuing_as_new_changes_nothing(name: str, every: int) -> None:
    definition, outputs, fail = _graphs()[name]
    reference_runner = Runner(outputs, fail)
    reference = _new(definition, reference_runner)
    await reference.run()

    runner = Runner(outputs, fail)
    split, runs = await _in_runs(definition, runner, every)
    assert runs > 1
    assert runner.calls == reference_runner.calls
    assert _summary(split) == _summary(reference)


async def test_a_paused_run_stays_paused_and_resumes_in_the_next_run() -> None:
    definition = chain("p", 4)
    gate = asyncio.Event()
    runner = Runner({}, set(), gate)
    first = _new(definition, runner, every=1)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(runner.entered.wait(), 5)
    first.pause()  # while n0 runs: it finishes, then the paused run continues as new
    gate.set()
    with pytest.raises(ContinueAsNew) as over:
        await task
    assert over.value.state.paused is True
    second = _new(
        definition, runner, BatchRunState.model_validate_json(over.value.state.model_dump_json())
    )
    task = asyncio.create_task(second.run())
    await asyncio.sleep(0)
    assert second.status is Status.Paused
    calls = len(runner.calls)
    await asyncio.sleep(0.01)
    assert len(runner.calls) == calls  # nothing starts while paused
    second.resume()
    assert await task is Status.Completed
    assert [c[0] for c in runner.calls] == ["n0", "n1", "n2", "n3"]
    assert [e.type.value for e in second.events(0, 100)].count("workflow_paused") == 1


async def test_outputs_no_node_needs_are_dropped_when_outputs_grow_large(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """n0 -> n1 -> ... : once n2 has run, n0's and n1's outputs are read by nobody; with a
    small budget for outputs only the needed one travels, and the run still completes."""
    monkeypatch.setattr(interpreter_module, "CARRIED_OUTPUT_BYTES", 3_000)
    big = {f"n{i}": {"blob": "x" * 1500} for i in range(6)}
    runner = Runner(big, set())
    first = _new(chain("d", 6), runner, every=3)
    with pytest.raises(ContinueAsNew) as over:
        await first.run()
    state = over.value.state
    assert sorted(state.outputs) == ["n2"]
    assert state.dropped_results == ["n0", "n1"]
    second = _new(chain("d", 6), runner, BatchRunState.model_validate_json(state.model_dump_json()))
    assert await second.run() is Status.Completed
    assert runner.calls[3] == ("n3", {"n2": big["n2"]})
    states = second.context().node_states
    assert "result" not in states["n0"]
    assert states["n5"]["result"] == big["n5"]


async def test_events_keep_their_sequence_across_runs() -> None:
    runner = Runner({}, set())
    split, _ = await _in_runs(chain("e", 5), runner, 2)
    sequences = [e.sequence for e in split.events(0, 1000)]
    assert sequences == list(range(1, len(sequences) + 1))
    assert split.events(after=sequences[-2])[0].sequence == sequences[-1]
