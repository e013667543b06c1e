"""One place that picks the pure controller of an execution's mode: the
:class:`~engine.runtime.interpreter.Interpreter` for the batch modes,
:class:`~engine.runtime.event_run.EventRun` for EventDriven and
:class:`~engine.runtime.stream_run.StreamRun` for Streaming. The workflow builds its run with
it, and the client builds the context of a run no worker has started yet with the same call,
so both report the same fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from engine.language.graph import Graph
from engine.language.models import WorkflowExecutionMode
from engine.runtime.contracts import ExecutionInput
from engine.runtime.event_run import EventRun, SourceWatcher
from engine.runtime.interpreter import Interpreter, NodeRunner
from engine.runtime.long_run import LongRun
from engine.runtime.stream_run import StreamRun, StreamRunner


@dataclass(frozen=True)
class Host:
    """What a controller asks of whoever runs it (the workflow passes Temporal's answers)."""

    runner: NodeRunner
    watch: SourceWatcher
    run_stream: StreamRunner
    clock: Callable[[], datetime]
    # Long runs: asked at each turn of their loop; batch runs: between steps, or never.
    long_should_continue_as_new: Callable[[], bool]
    batch_should_continue_as_new: Callable[[], bool] | None = None
    meter_conditions: Callable[[], bool] | None = None
    # Batch runs: asked before a failed or cancelled run compensates its nodes.
    may_compensate: Callable[[], bool] | None = None
    # A finished map whose entry edges fail on the splitter's summary: resolve them as taken?
    map_entry_taken: Callable[[], bool] | None = None
    # EventDriven runs: an event its pass cannot route (a condition about a field it lacks)
    # fails that pass, counted and reported? (Before, the pass's task ended with the error.)
    unroutable_fails_pass: Callable[[], bool] | None = None


def controller_for(
    params: ExecutionInput,
    graph: Graph,
    *,
    execution_id: str,
    host: Host,
) -> Interpreter | LongRun:
    """The controller of ``params.workflow``'s mode; a batch run gets the nodes completed
    before it and the state a previous run stopped with."""
    workflow = params.workflow
    if workflow.execution_mode is WorkflowExecutionMode.EventDriven:
        return EventRun(
            workflow,
            execution_id=execution_id,
            state=params.state,
            runner=host.runner,
            watch=host.watch,
            clock=host.clock,
            should_continue_as_new=host.long_should_continue_as_new,
            meter_conditions=host.meter_conditions,
            map_entry_taken=host.map_entry_taken,
            unroutable_fails_pass=host.unroutable_fails_pass,
        )
    if workflow.execution_mode is WorkflowExecutionMode.Streaming:
        return StreamRun(
            workflow,
            execution_id=execution_id,
            state=params.state,
            run_stream=host.run_stream,
            clock=host.clock,
            should_continue_as_new=host.long_should_continue_as_new,
        )
    return Interpreter(
        graph,
        execution_id=execution_id,
        input_data=params.input_data,
        runner=host.runner,
        clock=host.clock,
        completed=params.completed or None,
        carried=params.batch_state,
        should_continue_as_new=host.batch_should_continue_as_new,
        meter_conditions=host.meter_conditions,
        may_compensate=host.may_compensate,
        map_entry_taken=host.map_entry_taken,
    )
