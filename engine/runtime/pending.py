"""The context an execution reports before a worker took its first step.

Built by the same pure controller its workflow runs
(:func:`~engine.runtime.controllers.controller_for`), so it has the same fields, with status
Pending.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.language.models import WorkflowExecutionContext, WorkflowExecutionStatus
from engine.language.validation import compile_workflow
from engine.runtime.contracts import ExecutionInput
from engine.runtime.controllers import Host, controller_for
from engine.runtime.interpreter import Interpreter


def initial_context(
    params: ExecutionInput, execution_id: str, start_time: datetime
) -> WorkflowExecutionContext:
    """The context an execution reports before its first step: built by the same pure
    controller its workflow runs, so it has the same fields, with status Pending."""
    workflow = params.workflow

    def clock() -> datetime:
        return start_time

    idle: Any = _runs_nothing
    host = Host(
        runner=idle,
        watch=idle,
        run_stream=idle,
        clock=clock,
        long_should_continue_as_new=lambda: False,
    )
    controller = controller_for(
        params,
        compile_workflow(workflow),
        execution_id=execution_id,
        host=host,
    )
    if isinstance(controller, Interpreter) and params.earlier is not None:
        controller.continue_from(params.earlier)  # a retry: its earlier records and progress
    context = controller.context()
    context.status = WorkflowExecutionStatus.Pending
    context.start_time = context.start_time or start_time
    return context


async def _runs_nothing(*_: Any) -> Any:
    raise RuntimeError("an initial context runs nothing")
