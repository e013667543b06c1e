"""The context an execution reports before a worker took its first step.

Built by the same pure controller its workflow runs (:class:`~engine.interpreter.Interpreter`,
:class:`~engine.event_run.EventRun`, :class:`~engine.stream_run.StreamRun`), so it has the same
fields, with status Pending.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.contracts import ExecutionInput
from engine.event_run import EventRun
from engine.interpreter import Interpreter
from engine.long_run import LongRun
from engine.models import WorkflowExecutionContext, WorkflowExecutionMode, WorkflowExecutionStatus
from engine.stream_run import StreamRun
from engine.validation import compile_workflow


def initial_context(
    params: ExecutionInput, execution_id: str, start_time: datetime
) -> WorkflowExecutionContext:
    """The context an execution reports before its first step: built by the same pure
    controller its workflow runs, so it has the same fields, with status Pending."""
    workflow = params.workflow

    def clock() -> datetime:
        return start_time

    idle: Any = _runs_nothing

    controller: Interpreter | LongRun
    if workflow.execution_mode is WorkflowExecutionMode.EventDriven:
        controller = EventRun(
            workflow,
            execution_id=execution_id,
            state=params.state,
            runner=idle,
            watch=idle,
            clock=clock,
            should_continue_as_new=lambda: False,
        )
    elif workflow.execution_mode is WorkflowExecutionMode.Streaming:
        controller = StreamRun(
            workflow,
            execution_id=execution_id,
            state=params.state,
            run_stream=idle,
            clock=clock,
            should_continue_as_new=lambda: False,
        )
    else:
        controller = Interpreter(
            compile_workflow(workflow),
            execution_id=execution_id,
            input_data=params.input_data,
            runner=idle,
            clock=clock,
            completed=params.completed or None,
        )
        if params.earlier is not None:  # a retry: its earlier records and progress
            controller.continue_from(params.earlier)
    context = controller.context()
    context.status = WorkflowExecutionStatus.Pending
    context.start_time = context.start_time or start_time
    return context


async def _runs_nothing(*_: Any) -> Any:
    raise RuntimeError("an initial context runs nothing")
