"""What every run's controller shares about its life: how it hands over to a new Temporal run."""

from __future__ import annotations

from engine.runtime.contracts import BatchRunState, LongRunState


class ContinueAsNew(BaseException):
    """A run drained and wants to continue as new with :attr:`state` (a batch run's or a long
    run's). A ``BaseException``, like cancellation, so that no ``except Exception`` on the way
    (a plugin's, a runner's) can swallow the hand-over."""

    def __init__(self, state: BatchRunState | LongRunState) -> None:
        super().__init__("continue as new")
        self.state = state
