"""Streaming runs (engine.runtime.stream_run) with a fake stream activity, no server: the
progress it reports, pause and resume, a new definition version, and the hand-over to a new
Temporal run from where the stream stopped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import (
    PluginWorkflow,
    WorkflowConnection,
    WorkflowEventType,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.runtime.contracts import LongRunState, NodeCounters, StreamProgress, StreamRunInput
from engine.runtime.lifecycle import ContinueAsNew
from engine.runtime.stream_run import StreamRun
from tests.unit.fakes import Clock, settle, until

Status = WorkflowExecutionStatus
Event = WorkflowEventType


def _definition(version: int = 1) -> PluginWorkflow:
    """read (a Source) -> clean -> write."""
    return PluginWorkflow(
        workflow_id="pipeline",
        execution_mode=WorkflowExecutionMode.Streaming,
        version=version,
        nodes=[
            WorkflowNode(node_id="read", plugin_id="lines", node_type=WorkflowNodeType.Source),
            WorkflowNode(node_id="clean", plugin_id="strip"),
            WorkflowNode(node_id="write", plugin_id="sink"),
        ],
        connections=[
            WorkflowConnection(source_node="read", target_node="clean"),
            WorkflowConnection(source_node="clean", target_node="write"),
        ],
        global_configuration={"batch_size": 10},
    )


class FakeStream:
    """Stands in for the stream activity: starts from the counters and checkpoint it is
    given, reports progress as the workflow's signal would, and when cancelled drains,
    reports where it stopped and ends. ``finish`` ends it with the source exhausted,
    ``fail`` with an error."""

    def __init__(self) -> None:
        self.run: StreamRun | None = None
        self.calls: list[StreamRunInput] = []
        self.position = 0
        self.active = False
        self._given: dict[str, NodeCounters] = {}
        self._end: asyncio.Future[StreamProgress] | None = None

    async def __call__(self, call: StreamRunInput) -> StreamProgress:
        # The activity's input as Temporal hands it over (a copy, taken once it runs).
        call = StreamRunInput.model_validate_json(call.model_dump_json())
        self.calls.append(call)
        self.position = call.checkpoint or 0
        self._given = call.counters
        self._end = asyncio.get_running_loop().create_future()
        self.active = True
        try:
            return await self._end
        except asyncio.CancelledError:
            self.report()  # the last committed batch, before acknowledging
            raise
        finally:
            self.active = False

    def progress(self) -> StreamProgress:
        """Counters after ``position`` items went through every node, and the checkpoint."""
        start = self._given.get("read", NodeCounters()).items_out
        added = self.position - start
        counters = {}
        for node_id in ("read", "clean", "write"):
            given = self._given.get(node_id, NodeCounters())
            counters[node_id] = given.model_copy(
                update={
                    "items_in": given.items_in + (added if node_id != "read" else 0),
                    "items_out": given.items_out + (added if node_id != "write" else 0),
                }
            )
        return StreamProgress(counters=counters, checkpoint=self.position)

    def advance(self, items: int) -> None:
        self.position += items
        self.report()

    def report(self) -> None:
        assert self.run is not None
        self.run.progress(self.progress())

    def finish(self) -> None:
        assert self._end is not None
        final = self.progress()
        final.exhausted = final.final = True
        self._end.set_result(final)

    def fail(self, message: str) -> None:
        assert self._end is not None
        self._end.set_exception(PluginError(PluginErrorCode.PluginExecutionFailed, message))


def _run(
    stream: FakeStream,
    *,
    state: LongRunState | None = None,
    clock: Clock | None = None,
    continue_as_new: Any = lambda: False,
) -> StreamRun:
    run = StreamRun(
        _definition(),
        execution_id="pipeline/run-1",
        state=state,
        run_stream=stream,
        clock=clock or Clock(),
        should_continue_as_new=continue_as_new,
    )
    stream.run = run
    return run


def _types(run: StreamRun) -> list[str]:
    return [event.type.value for event in run.events(0, 10_000)]


async def test_progress_shows_in_the_context_and_the_end_completes_the_run() -> None:
    stream = FakeStream()
    run = _run(stream)
    task = asyncio.create_task(run.run())
    await until(lambda: stream.active)
    call = stream.calls[0]
    assert (call.source_node, call.checkpoint, call.workflow.version) == ("read", None, 1)
    assert call.settings.batch_size == 10

    states = run.context().node_states
    assert {n: s["status"] for n, s in states.items()} == dict.fromkeys(
        ["read", "clean", "write"], "running"
    )

    stream.advance(25)
    context = run.context()
    assert context.status is Status.Running
    assert context.node_states["write"]["counters"]["items_in"] == 25
    assert context.execution_data["checkpoint"] == 25
    assert context.execution_data["items_read"] == 25
    progress = [e for e in run.events(0, 100) if e.type is Event.execution_progress_updated]
    assert progress[-1].details == {"items_out": {"read": 25, "clean": 25, "write": 0}}

    stream.advance(5)
    stream.finish()
    assert await task is Status.Completed
    context = run.context()
    assert context.progress == 1.0
    assert context.execution_data["items_read"] == 30
    assert context.node_states["write"]["counters"]["items_in"] == 30
    assert _types(run)[0] == "workflow_started"
    assert _types(run)[-1] == "workflow_completed"


async def test_pause_stops_the_stream_where_it_was_and_resume_starts_it_there() -> None:
    stream = FakeStream()
    run = _run(stream)
    task = asyncio.create_task(run.run())
    await until(lambda: stream.active)
    stream.advance(40)

    run.pause()
    await until(lambda: not stream.active, "the stream did not stop")
    await settle()
    assert len(stream.calls) == 1  # nothing starts while paused
    assert run.status is Status.Paused
    assert run.state.paused is True
    assert {s["status"] for s in run.context().node_states.values()} == {"pending"}
    with pytest.raises(PluginError) as refused:
        run.check_transition("pause")
    assert refused.value.code is PluginErrorCode.InvalidState

    run.resume()
    await until(lambda: stream.active)
    assert len(stream.calls) == 2
    assert stream.calls[1].checkpoint == 40
    assert stream.calls[1].counters["read"].items_out == 40
    stream.finish()
    assert await task is Status.Completed
    types = _types(run)
    assert types.index("workflow_paused") < types.index("workflow_resumed")


async def test_continue_as_new_stops_the_stream_and_the_next_run_goes_on_from_there() -> None:
    wants_new_run = False
    clock = Clock()
    stream = FakeStream()
    run = _run(stream, clock=clock, continue_as_new=lambda: wants_new_run)
    task = asyncio.create_task(run.run())
    await until(lambda: stream.active)
    stream.advance(70)

    wants_new_run = True
    run.wake()
    with pytest.raises(ContinueAsNew) as handed_over:
        await task
    assert not stream.active
    carried = handed_over.value.state
    assert isinstance(carried, LongRunState)
    assert carried.runs == 2
    assert carried.checkpoints == {"read": 70}
    assert carried.counters["clean"].items_out == 70
    assert carried.next_sequence == run.last_sequence + 1

    state = LongRunState.model_validate_json(carried.model_dump_json())
    next_stream = FakeStream()
    second = _run(next_stream, state=state, clock=clock)
    task = asyncio.create_task(second.run())
    await until(lambda: next_stream.active)
    assert next_stream.calls[0].checkpoint == 70
    assert next_stream.calls[0].counters["write"].items_in == 70
    next_stream.advance(30)
    next_stream.finish()
    assert await task is Status.Completed
    assert second.context().execution_data["items_read"] == 100
    assert second.context().execution_data["runs"] == 2
    assert _types(second).count("workflow_started") == 1
    sequences = [event.sequence for event in second.events(0, 1000)]
    assert sequences == list(range(1, len(sequences) + 1))


async def test_a_new_version_restarts_the_stream_on_it() -> None:
    stream = FakeStream()
    run = _run(stream)
    task = asyncio.create_task(run.run())
    await until(lambda: stream.active)
    stream.advance(10)
    run.adopt(_definition(version=2))
    run.adopt(_definition(version=2))  # a repeated notice changes nothing
    await until(lambda: len(stream.calls) == 2 and stream.active)
    assert [call.workflow.version for call in stream.calls] == [1, 2]
    assert stream.calls[1].checkpoint == 10
    assert _types(run).count("definition_updated") == 1
    assert run.context().execution_data["workflow_version"] == 2
    task.cancel()
    assert await task is Status.Cancelled
    assert not stream.active
    assert run.context().error_messages == ["execution was cancelled"]


async def test_a_failing_stream_fails_the_run() -> None:
    stream = FakeStream()
    run = _run(stream)
    task = asyncio.create_task(run.run())
    await until(lambda: stream.active)
    stream.fail("the sink refused a batch")
    assert await task is Status.Failed
    context = run.context()
    assert context.error_messages == ["stream failed: the sink refused a batch"]
    assert context.end_time is not None
    assert _types(run)[-1] == "workflow_failed"


async def test_a_fresh_stream_shows_its_nodes_running_then_completed() -> None:
    """The stream activity of a fresh run was handed empty counters: its reports must not
    overwrite what the run itself knows (its nodes run, and since when)."""
    stream = FakeStream()
    run = _run(stream)
    task = asyncio.create_task(run.run())
    await until(lambda: stream.active)
    stream.advance(10)
    states = run.context().node_states
    assert {n: s["status"] for n, s in states.items()} == dict.fromkeys(
        ["read", "clean", "write"], "running"
    )
    assert all(s["started_at"] for s in states.values())
    stream.finish()
    assert await task is Status.Completed
    states = run.context().node_states
    assert {n: s["status"] for n, s in states.items()} == dict.fromkeys(
        ["read", "clean", "write"], "completed"
    )
    assert all(s["started_at"] for s in states.values())
