"""One error type with stable codes, the Python form of the spec's ``expected<T, PluginError>``.

Every public call either returns its value or raises :class:`PluginError`. The ``code`` is a
:class:`PluginErrorCode`; the message names the workflow, node, connection or execution at
fault. Codes are stable strings: they cross process boundaries as the ``type`` of a Temporal
``ApplicationError`` and are turned back into ``PluginError`` at the client boundary.

    PluginError
     ├── code: PluginErrorCode   (what went wrong, machine readable)
     ├── message: str            (what went wrong, for people; names the culprit)
     └── details: dict           (structured extras, e.g. the cycle's node ids)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class PluginErrorCode(StrEnum):
    """Stable error codes. The value is the member name, so it reads the same everywhere."""

    # Definition problems (raised by validation, nothing is stored).
    InvalidWorkflowStructure = "InvalidWorkflowStructure"
    CircularDependency = "CircularDependency"
    NodeNotFound = "NodeNotFound"
    InvalidConnection = "InvalidConnection"
    ExecutionModeNotSupported = "ExecutionModeNotSupported"
    # Registry and execution lookups.
    WorkflowNotFound = "WorkflowNotFound"
    WorkflowAlreadyExists = "WorkflowAlreadyExists"
    ExecutionNotFound = "ExecutionNotFound"
    InvalidState = "InvalidState"
    InvalidInput = "InvalidInput"
    # Schedules (engine.client.schedules).
    ScheduleNotFound = "ScheduleNotFound"
    ScheduleAlreadyExists = "ScheduleAlreadyExists"
    # Plugins and nodes at run time.
    PluginNotFound = "PluginNotFound"
    InvalidConfiguration = "InvalidConfiguration"
    InvalidOutput = "InvalidOutput"
    PluginExecutionFailed = "PluginExecutionFailed"
    ExecutionFailed = "ExecutionFailed"
    # A start over a definition's max_concurrent_executions with concurrency_overflow "reject".
    ConcurrencyLimitReached = "ConcurrencyLimitReached"
    # Infrastructure.
    Timeout = "Timeout"
    ServerUnavailable = "ServerUnavailable"
    WorkerUnavailable = "WorkerUnavailable"


class PluginError(Exception):
    """The one exception type of the public API.

    Args:
        code: What went wrong.
        message: A sentence naming the offending workflow, node, connection or execution.
        details: Optional structured data (for example ``{"cycle": ["a", "b", "a"]}``).
    """

    def __init__(
        self, code: PluginErrorCode, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def __repr__(self) -> str:
        return f"PluginError({self.code.value!r}, {self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PluginError, (self.code, self.message, self.details))

    @classmethod
    def from_type(cls, type_name: str | None, message: str, details: Any = None) -> PluginError:
        """Rebuild an error from an ``ApplicationError`` type name; unknown names become
        ``ExecutionFailed`` so nothing is lost at the boundary."""
        try:
            code = PluginErrorCode(type_name or "")
        except ValueError:
            code = PluginErrorCode.ExecutionFailed
        return cls(code, message, details if isinstance(details, dict) else None)
