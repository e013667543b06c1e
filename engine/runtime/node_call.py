"""What a controller and a node runner exchange: the call of one node, its success, its
failure, and the runner's and event sink's shapes. (Re-exported by
:mod:`engine.runtime.interpreter`, where they were first defined.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from engine.language.models import WorkflowEventType
from engine.language.options import NodeOptions
from engine.runtime.node_state import call_key


@dataclass(frozen=True, slots=True)
class NodeCall:
    """What a runner needs to execute one node."""

    execution_id: str
    workflow_id: str
    node_id: str
    node_name: str
    plugin_id: str
    inputs: dict[str, Any]
    config: dict[str, Any]
    options: NodeOptions
    pass_id: int = 0  # EventDriven: the event's pass (node ids repeat across passes)
    item_key: str = ""  # Splitter maps: "splitter:index" of the item (node ids repeat too)
    compensation: bool = False  # the node's compensation (engine.runtime.compensation)

    @property
    def key(self) -> str:
        """The call's node in its pass: ``node`` or ``node#pass`` (:func:`call_key`)."""
        return call_key(self.node_id, self.pass_id)


@dataclass(frozen=True, slots=True)
class NodeSuccess:
    """A node's output and the attempt that produced it.

    A Splitter's success also carries its map's end: the aggregator's output and, per body
    node, how often it ran (the interpreter records them all at once).
    """

    output: dict[str, Any]
    attempts: int = 1
    aggregated: dict[str, Any] | None = None
    body_counts: dict[str, dict[str, int]] | None = None


class NodeFailure(Exception):
    """A node failed for good (retries exhausted or not retryable)."""

    def __init__(
        self, message: str, *, error_type: str = "Error", attempts: int = 1, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.attempts = attempts
        self.retryable = retryable


class EventSink(Protocol):
    """Receives a pass's events: the type and the fields (node_id, error, ...)."""

    def __call__(self, event_type: WorkflowEventType, fields: dict[str, Any]) -> None: ...


class NodeRunner(Protocol):
    """Executes one node call; raises :class:`NodeFailure` when the node fails for good."""

    async def __call__(self, call: NodeCall) -> NodeSuccess: ...
