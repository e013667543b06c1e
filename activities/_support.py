"""What the activities share: calling a plugin, heartbeating, mapping errors."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from engine.errors import PluginErrorCode
from plugins import Plugin, PluginContext

# Codes a retry cannot fix.
TERMINAL_CODES = frozenset(
    {
        PluginErrorCode.PluginNotFound,
        PluginErrorCode.InvalidConfiguration,
        PluginErrorCode.InvalidOutput,
        PluginErrorCode.InvalidWorkflowStructure,
        PluginErrorCode.PluginExecutionFailed,
    }
)


def failure(
    message: str, error_type: str, attempt: int, non_retryable: bool = False
) -> ApplicationError:
    """An activity failure with a stable type and the attempt in its details.

    BENIGN: the SDK then logs it at DEBUG; the activities log each failed attempt once
    themselves, with execution, node and attempt bound, instead of a bare traceback.
    """
    return ApplicationError(
        message,
        {"attempt": attempt},
        type=error_type,
        non_retryable=non_retryable,
        category=ApplicationErrorCategory.BENIGN,
    )


def plugin_context(
    *,
    execution_id: str,
    workflow_id: str,
    node_id: str,
    plugin_id: str,
    checkpoint: Any = None,
) -> PluginContext:
    """A context for a plugin call inside the current activity."""
    info = activity.info()
    logger = structlog.get_logger("plugin").bind(
        execution_id=execution_id,
        workflow_id=workflow_id,
        node_id=node_id,
        plugin_id=plugin_id,
        attempt=info.attempt,
    )
    return PluginContext(
        execution_id=execution_id,
        workflow_id=workflow_id,
        node_id=node_id,
        plugin_id=plugin_id,
        attempt=info.attempt,
        idempotency_key=f"{info.workflow_run_id}/{info.activity_id}",
        checkpoint=checkpoint,
        logger=logger,
    )


async def invoke(
    plugin: Plugin,
    inputs: dict[str, Any],
    config: Any,
    ctx: PluginContext,
    executor: ThreadPoolExecutor,
) -> Any:
    """Call a plugin: async ones on the event loop, synchronous ones in a thread (so a
    blocking plugin never stalls the heartbeats of other nodes)."""
    if plugin.is_async:
        return await plugin.function(inputs, config, ctx)  # type: ignore[misc]
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, plugin.function, inputs, config, ctx)
    # A thread cannot be interrupted; on cancellation we stop waiting and the plugin sees
    # ctx.is_cancelled.
    return await loop.run_in_executor(executor, call)


class Heartbeats:
    """Heartbeats in the background with the latest details; safe to feed from threads.

    Beats about once a second (the SDK throttles what reaches the server) so a cancellation,
    which arrives in a heartbeat's response, is noticed quickly. The first beat waits one
    interval, so short activities never pay for one.
    """

    def __init__(self, details: Any = None, on_beat: Callable[[], None] | None = None) -> None:
        self._details: tuple[Any, ...] = () if details is None else (details,)
        self._loop = asyncio.get_running_loop()
        self._on_beat = on_beat

    def record(self, *details: Any) -> None:
        """Remember new details and heartbeat them (callable from any thread)."""
        if details:
            self._details = details
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            activity.heartbeat(*self._details)
        else:
            self._loop.call_soon_threadsafe(lambda: activity.heartbeat(*self._details))

    def set(self, *details: Any) -> None:
        """Remember new details for the next beat, without beating now."""
        self._details = details

    async def run(self, timeout: timedelta | None) -> None:
        if timeout is None:
            return
        interval = min(max(0.1, timeout.total_seconds() / 3), 1.0)
        while True:
            await asyncio.sleep(interval)
            activity.heartbeat(*self._details)
            if self._on_beat is not None:
                self._on_beat()
