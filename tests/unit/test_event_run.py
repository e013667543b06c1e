"""EventDriven runs (engine.runtime.event_run) with a fake node runner and a fake source, no
server: one pass per event, duplicates dropped, pause and resume, and the hand-over to a new
Temporal run with everything it carries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import (
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowEventType,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.runtime.contracts import IncomingEvent, LongRunState
from engine.runtime.event_run import EventRun
from engine.runtime.lifecycle import ContinueAsNew
from tests.unit.fakes import Clock, FakeRunner, settle, until

Status = WorkflowExecutionStatus
Event = WorkflowEventType


def _definition(**global_configuration: Any) -> PluginWorkflow:
    """src (a Source) -event-> a -> b."""
    return PluginWorkflow(
        workflow_id="orders",
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[
            WorkflowNode(node_id="src", plugin_id="watch", node_type=WorkflowNodeType.Source),
            WorkflowNode(node_id="a", plugin_id="check"),
            WorkflowNode(node_id="b", plugin_id="store"),
        ],
        connections=[
            WorkflowConnection(
                source_node="src", target_node="a", connection_type=ConnectionType.Event
            ),
            WorkflowConnection(source_node="a", target_node="b"),
        ],
        global_configuration=global_configuration,
    )


class FakeSource:
    """Watches the Source node until cancelled. Each watch starts from the checkpoint the run
    gives it; when cancelled it reports where it stopped (the workflow gets that from the
    source's activity as a signal) and ends."""

    def __init__(self) -> None:
        self.run: EventRun | None = None
        self.checkpoints: list[Any] = []  # what each watch started from
        self.watching = False
        self.position = 0

    async def __call__(
        self, node_id: str, plugin_id: str, config: dict[str, Any], checkpoint: Any
    ) -> Any:
        self.checkpoints.append(checkpoint)
        self.position = checkpoint or 0
        self.watching = True
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            assert self.run is not None
            self.run.record_checkpoint(node_id, self.position)
            raise
        finally:
            self.watching = False

    def deliver(self, *payloads: dict[str, Any]) -> None:
        """Events the source read, each with an id of its position."""
        assert self.run is not None
        events = []
        for payload in payloads:
            self.position += 1
            events.append(IncomingEvent(event_id=f"src-{self.position}", payload=payload))
        self.run.accept(events)


def _run(
    source: FakeSource,
    runner: FakeRunner,
    *,
    state: LongRunState | None = None,
    clock: Clock | None = None,
    continue_as_new: Any = lambda: False,
    **global_configuration: Any,
) -> EventRun:
    run = EventRun(
        _definition(**global_configuration),
        execution_id="orders/run-1",
        state=state,
        runner=runner,
        watch=source,
        clock=clock or Clock(),
        should_continue_as_new=continue_as_new,
    )
    source.run = run
    return run


def _types(run: EventRun) -> list[str]:
    return [event.type.value for event in run.events(0, 10_000)]


async def _cancel(run: EventRun, task: asyncio.Task[Status]) -> None:
    task.cancel()
    assert await task is Status.Cancelled
    assert run.status is Status.Cancelled


async def test_each_event_runs_one_pass_through_the_graph() -> None:
    source, runner = FakeSource(), FakeRunner(fail=lambda call: call.inputs.get("n") == 2)
    run = _run(source, runner)
    task = asyncio.create_task(run.run())
    await until(lambda: source.watching)
    source.deliver({"n": 1}, {"n": 2}, {"n": 3})
    await until(lambda: run.state.processed + run.state.failed == 3)

    calls = [(call.node_id, call.pass_id) for call in runner.calls]
    assert sorted(calls) == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 3)]
    a_calls = {call.pass_id: call.inputs for call in runner.calls if call.node_id == "a"}
    assert a_calls == {1: {"n": 1}, 2: {"n": 2}, 3: {"n": 3}}  # the event's payload
    b_call = next(call for call in runner.calls if call.node_id == "b")
    assert b_call.inputs == {"a": {"node": "a", "pass": b_call.pass_id}}

    # A failed pass is recorded and the run goes on.
    assert (run.state.processed, run.state.failed) == (2, 1)
    assert run.status is Status.Running
    processed = [e for e in run.events(0, 1000) if e.type is Event.event_processed]
    details = [e.details or {} for e in processed]
    assert sorted((d["pass"], d["status"]) for d in details) == [
        (1, "completed"),
        (2, "failed"),
        (3, "completed"),
    ]
    failed = next(e for e in processed if (e.details or {}).get("status") == "failed")
    assert failed.error is not None
    assert "node 'a' (plugin 'check') failed after 2 attempts" in failed.error
    context = run.context()
    assert context.node_states["a"]["counters"]["runs"] == 3
    assert context.node_states["a"]["counters"]["failed"] == 1
    assert context.node_states["b"]["counters"]["completed"] == 2
    assert context.node_states["src"]["status"] == "running"
    assert context.execution_data["events_received"] == 3
    assert context.execution_data["events_processed"] == 2
    assert context.execution_data["events_failed"] == 1
    await _cancel(run, task)
    assert _types(run)[0] == "workflow_started"
    assert _types(run)[-1] == "workflow_cancelled"


async def test_an_event_seen_before_is_dropped() -> None:
    source, runner = FakeSource(), FakeRunner()
    run = _run(source, runner)
    task = asyncio.create_task(run.run())
    run.accept([IncomingEvent(event_id="x", payload={"n": 1})] * 2)
    run.accept([IncomingEvent(event_id="x", payload={"n": 2}), IncomingEvent(event_id="y")])
    await until(lambda: run.state.processed == 2)
    await settle()
    assert [call.inputs for call in runner.calls if call.node_id == "a"] == [{"n": 1}, {}]
    assert _types(run).count("event_received") == 2
    assert run.state.received == 2
    events = [e for e in run.events(0, 100) if e.type is Event.event_received]
    assert [e.node_id for e in events] == ["src", "src"]  # a client's event: the source's
    await _cancel(run, task)


async def test_passes_run_at_most_max_concurrent_events_at_once_in_order() -> None:
    gate = asyncio.Event()
    source, runner = FakeSource(), FakeRunner(gates={"a": gate})
    run = _run(source, runner, max_concurrent_events=2)
    task = asyncio.create_task(run.run())
    run.accept([IncomingEvent(event_id=f"e{i}", payload={"n": i}) for i in range(5)])
    await until(lambda: runner.running == 2)
    await settle()
    assert runner.running == 2
    assert run.context().execution_data["events_queued"] == 3
    gate.set()
    await until(lambda: run.state.processed == 5)
    assert runner.max_running == 2
    a_calls = [call for call in runner.calls if call.node_id == "a"]
    assert [call.inputs["n"] for call in a_calls] == [0, 1, 2, 3, 4]
    assert [call.pass_id for call in a_calls] == [1, 2, 3, 4, 5]
    await _cancel(run, task)


async def test_pause_stops_the_source_and_the_passes_and_resume_goes_on() -> None:
    source, runner = FakeSource(), FakeRunner()
    run = _run(source, runner)
    task = asyncio.create_task(run.run())
    await until(lambda: source.watching)
    source.deliver({"n": 1})
    await until(lambda: run.state.processed == 1)

    run.pause()
    assert run.status is Status.Paused
    assert run.state.paused is True
    await until(lambda: not source.watching, "the source did not stop")
    with pytest.raises(PluginError) as refused:
        run.check_transition("pause")
    assert refused.value.code is PluginErrorCode.InvalidState
    assert "cannot pause execution 'orders/run-1': it is paused" in refused.value.message
    run.accept([IncomingEvent(event_id="by-client", payload={"n": 2})])
    await settle()
    assert len(runner.calls) == 2  # the first pass's a and b only
    assert run.context().execution_data["events_queued"] == 1
    assert run.context().status is Status.Paused

    run.resume()
    await until(lambda: run.state.processed == 2)
    await until(lambda: source.watching)
    assert source.checkpoints == [None, 1]  # the source goes on where it stopped
    assert run.state.paused is False
    with pytest.raises(PluginError):
        run.check_transition("resume")
    types = _types(run)
    assert types.index("workflow_paused") < types.index("workflow_resumed")
    await _cancel(run, task)


async def test_continue_as_new_carries_queue_checkpoints_counters_dedup_and_events() -> None:
    wants_new_run = False
    gate = asyncio.Event()
    clock = Clock()
    source, runner = FakeSource(), FakeRunner(gates={"b": gate})
    run = _run(source, runner, clock=clock, continue_as_new=lambda: wants_new_run)
    task = asyncio.create_task(run.run())
    await until(lambda: source.watching)
    source.deliver({"n": 1}, {"n": 2})
    await until(lambda: runner.running == 2)  # both passes wait in b

    wants_new_run = True
    run.wake()
    await until(lambda: not source.watching)
    run.accept([IncomingEvent(event_id="late", payload={"n": 3})])  # queued for the next run
    assert run.admission(history_length=0).accepting is False
    await settle()
    assert not task.done()  # running passes finish first
    gate.set()
    with pytest.raises(ContinueAsNew) as handed_over:
        await task
    carried = handed_over.value.state
    assert isinstance(carried, LongRunState)
    assert carried.runs == 2
    assert carried.processed == 2
    assert carried.passes == 2
    assert [event.event_id for event in carried.queue] == ["late"]
    assert carried.checkpoints == {"src": 2}
    assert len(carried.seen) == 3
    assert carried.counters["a"].completed == 2
    assert carried.next_sequence == run.last_sequence + 1
    assert carried.events[-1].sequence == run.last_sequence

    # The next Temporal run starts from the state as Temporal carries it (JSON).
    state = LongRunState.model_validate_json(carried.model_dump_json())
    second_source = FakeSource()
    second = _run(second_source, runner, state=state, clock=clock)
    task = asyncio.create_task(second.run())
    await until(lambda: second.state.processed == 3)
    await until(lambda: second_source.watching)
    assert second_source.checkpoints == [2]
    last_pass = [call for call in runner.calls if call.node_id == "a"][-1]
    assert (last_pass.pass_id, last_pass.inputs) == (3, {"n": 3})
    second.accept([IncomingEvent(event_id="src-1", payload={"again": True})])  # seen before
    await settle()
    assert second.state.received == 3
    sequences = [event.sequence for event in second.events(0, 1000)]
    assert sequences == list(range(1, len(sequences) + 1))  # numbering goes on
    assert _types(second).count("workflow_started") == 1  # from the first run only
    assert second.context().execution_data["runs"] == 2
    assert second.context().node_states["a"]["counters"]["completed"] == 3
    await _cancel(second, task)


async def test_events_per_run_hands_over_with_the_events_still_queued() -> None:
    source, runner = FakeSource(), FakeRunner()
    run = _run(source, runner, events_per_run=100)
    task = asyncio.create_task(run.run())
    await until(lambda: source.watching)
    source.deliver(*({"n": n} for n in range(100)))
    with pytest.raises(ContinueAsNew) as handed_over:
        await task
    carried = handed_over.value.state
    assert isinstance(carried, LongRunState)
    assert len(carried.queue) == 100
    assert carried.checkpoints == {"src": 100}
    assert runner.calls == []


async def test_a_source_failing_for_good_fails_the_run() -> None:
    async def broken(node_id: str, plugin_id: str, config: dict[str, Any], checkpoint: Any) -> Any:
        raise PluginError(PluginErrorCode.PluginExecutionFailed, "disk gone")

    run = EventRun(
        _definition(),
        execution_id="orders/run-1",
        state=None,
        runner=FakeRunner(),
        watch=broken,
        clock=Clock(),
        should_continue_as_new=lambda: False,
    )
    assert await run.run() is Status.Failed
    context = run.context()
    assert context.error_messages == ["event source 'src' failed: disk gone"]
    assert context.node_states["src"]["status"] == "failed"
    assert context.end_time is not None
    assert _types(run)[-1] == "workflow_failed"


@pytest.mark.parametrize("patched", [True, False])
async def test_an_event_its_pass_cannot_route_fails_that_pass(patched: bool) -> None:
    definition = _definition()
    definition.connections[0] = WorkflowConnection(
        source_node="src",
        target_node="a",
        connection_type=ConnectionType.Control,
        properties={"condition": "amount > 10"},
    )
    source, runner = FakeSource(), FakeRunner()
    run = EventRun(
        definition,
        execution_id="orders/run-1",
        state=None,
        runner=runner,
        watch=source,
        clock=Clock(),
        should_continue_as_new=lambda: False,
        unroutable_fails_pass=lambda: patched,
    )
    source.run = run
    task = asyncio.create_task(run.run())
    await until(lambda: source.watching)
    source.deliver({"n": 1}, {"amount": 50})
    await until(lambda: run.state.processed == 1)
    await settle()
    assert [call.pass_id for call in runner.calls if call.node_id == "a"] == [2]
    if patched:
        assert run.state.failed == 1
        failed = [e for e in run.events(0, 1000) if e.type is Event.event_processed and e.error]
        assert len(failed) == 1
        assert "unknown variable 'amount'" in (failed[0].error or "")
    else:  # as passes did before the patch: nothing counted, the pass's slot kept
        assert run.state.failed == 0
        assert len(run._passes) == 1
    await _cancel(run, task)
