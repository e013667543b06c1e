"""Temporal's client exceptions as the engine's :class:`PluginError`, naming what they were
about: one place for the client, the CLI, the studio and the embedded server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from temporalio.client import (
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from engine.base.errors import PluginError, PluginErrorCode

Code = PluginErrorCode


@contextlib.contextmanager
def translate_errors(
    subject: str, not_found: Code = Code.ExecutionNotFound, missing: str = "does not exist"
) -> Iterator[None]:
    """Turn Temporal client exceptions into :class:`PluginError` naming ``subject``; a
    missing (or ended, for queries) workflow becomes ``not_found`` saying ``missing``."""
    try:
        yield
    except PluginError:
        raise
    except WorkflowUpdateFailedError as exc:
        raise from_failure(exc.cause, subject) from None
    except WorkflowQueryRejectedError:
        raise PluginError(not_found, f"{subject} {missing}") from None
    except WorkflowQueryFailedError as exc:
        raise PluginError(Code.ExecutionFailed, f"{subject}: query failed: {exc}") from None
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise PluginError(not_found, f"{subject} {missing}") from None
        raise from_rpc(exc, subject, not_found) from None


def translate_rpc(exc: RPCError, subject: str) -> PluginError:
    """A Temporal RPC error as a :class:`PluginError` naming ``subject``."""
    return from_rpc(exc, subject, Code.ExecutionNotFound)


def from_failure(cause: BaseException | None, subject: str) -> PluginError:
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details else None
        return PluginError.from_type(cause.type, cause.message, details)
    return PluginError(Code.ExecutionFailed, f"{subject}: {cause}")


def from_rpc(exc: RPCError, subject: str, not_found: Code) -> PluginError:
    if exc.status is RPCStatusCode.NOT_FOUND:
        return PluginError(not_found, f"{subject} does not exist")
    if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
        return PluginError(
            Code.WorkerUnavailable,
            f"{subject}: no worker answered in time; is a worker running on its task queue "
            "(`orchestrator worker`)?",
        )
    if exc.status is RPCStatusCode.FAILED_PRECONDITION and "no poller seen" in exc.message:
        # Temporal's own answer to a query no worker can take (no poller for a while).
        return PluginError(
            Code.WorkerUnavailable,
            f"{subject}: no worker polls its task queue (`orchestrator worker` starts one)",
        )
    if exc.status is RPCStatusCode.UNAVAILABLE:
        return PluginError(Code.ServerUnavailable, f"{subject}: Temporal is unavailable: {exc}")
    if exc.status is RPCStatusCode.INVALID_ARGUMENT:
        return PluginError(not_found, f"{subject}: {exc.message}")
    return PluginError(Code.ExecutionFailed, f"{subject}: {exc.status.name}: {exc.message}")
