"""What every run's controller shares about its life: its status, the pause and resume it
allows, how it ends, and how it hands over to a new Temporal run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import WorkflowEventType, WorkflowExecutionStatus
from engine.runtime.contracts import BatchRunState, LongRunState

Status = WorkflowExecutionStatus
EventType = WorkflowEventType

# The status a transition starts from.
_ALLOWED_FROM = {"pause": Status.Running, "resume": Status.Paused}


class ContinueAsNew(BaseException):
    """A run drained and wants to continue as new with :attr:`state` (a batch run's or a long
    run's). A ``BaseException``, like cancellation, so that no ``except Exception`` on the way
    (a plugin's, a runner's) can swallow the hand-over."""

    def __init__(self, state: BatchRunState | LongRunState) -> None:
        super().__init__("continue as new")
        self.state = state


class Emit(Protocol):
    """Records one of the run's events: its type and fields (error, progress, ...)."""

    def __call__(self, event_type: WorkflowEventType, **fields: Any) -> None: ...


class Lifecycle:
    """A run's status, end time and error messages, and the events that tell how they change.

    The run says when: :meth:`start` when its loop begins, :meth:`pause` and :meth:`resume`
    on a person's request (each raises ``PluginError(InvalidState)`` from a status that does
    not allow it, as :meth:`check_transition` does before a request is taken), and
    :meth:`finish` when it ends. What pausing means for the run's work is the run's own
    business."""

    def __init__(
        self,
        execution_id: str,
        *,
        status: Status,
        clock: Callable[[], datetime],
        emit: Emit,
    ) -> None:
        self._execution_id = execution_id
        self._clock = clock
        self._emit = emit
        self.status = status
        self.end_time: datetime | None = None
        self.error_messages: list[str] = []

    @property
    def is_paused(self) -> bool:
        return self.status is Status.Paused

    def start(self, *, paused: bool) -> None:
        """The run's loop begins (``paused``: it was paused when it continued as new)."""
        self.status = Status.Paused if paused else Status.Running

    def check_transition(self, action: str) -> None:
        """Raise ``PluginError(InvalidState)`` if ``action`` ("pause"/"resume") is invalid
        now."""
        if self.status is not _ALLOWED_FROM[action]:
            raise PluginError(
                PluginErrorCode.InvalidState,
                f"cannot {action} execution '{self._execution_id}': it is {self.status.value}",
            )

    def pause(self) -> None:
        self.check_transition("pause")
        self.status = Status.Paused
        self._emit(EventType.workflow_paused)

    def resume(self) -> None:
        self.check_transition("resume")
        self.status = Status.Running
        self._emit(EventType.workflow_resumed)

    def finish(
        self,
        status: Status,
        *,
        progress: float,
        error: str | None,
        announce: bool = True,
        details: dict[str, Any] | None = None,
    ) -> None:
        """End with ``status`` (Completed, Failed or Cancelled); unless ``announce`` is False
        (a pass or a map item: its execution reports the outcome), record the end event with
        ``progress`` or ``error``, and ``details`` if given."""
        self.status = status
        self.end_time = self._clock()
        if not announce:
            return
        more: dict[str, Any] = {"details": details} if details is not None else {}
        if status is Status.Completed:
            self._emit(EventType.workflow_completed, progress=progress, **more)
        elif status is Status.Failed:
            self._emit(EventType.workflow_failed, error=error, **more)
        else:
            self.error_messages.append("execution was cancelled")
            self._emit(EventType.workflow_cancelled, **more)
