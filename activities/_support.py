"""What the activities share: calling a plugin, heartbeating, mapping errors."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.capacity import CANCEL_GRACE_SECONDS, PluginThreads, ThreadCall
from engine.base.errors import PluginErrorCode
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
    attempt: int | None = None,
) -> PluginContext:
    """A context for a plugin call inside the current activity (``attempt``: the node's,
    when the workflow counts them; the activity's otherwise)."""
    info = activity.info()
    attempt = attempt or info.attempt
    logger = structlog.get_logger("plugin").bind(
        execution_id=execution_id,
        workflow_id=workflow_id,
        node_id=node_id,
        plugin_id=plugin_id,
        attempt=attempt,
    )
    return PluginContext(
        execution_id=execution_id,
        workflow_id=workflow_id,
        node_id=node_id,
        plugin_id=plugin_id,
        attempt=attempt,
        idempotency_key=f"{info.workflow_run_id}/{info.activity_id}",
        checkpoint=checkpoint,
        logger=logger,
    )


async def invoke(
    plugin: Plugin,
    inputs: dict[str, Any],
    config: Any,
    ctx: PluginContext,
    threads: PluginThreads,
    *,
    on_cancel: Callable[[], None] | None = None,
) -> Any:
    """Call a plugin: async ones in a task of their own, synchronous ones on a thread of
    their own (:class:`~activities.capacity.PluginThreads`), so a blocking plugin never
    stalls the heartbeats of other nodes.

    When the attempt is cancelled (or timed out) ``on_cancel`` runs at once (stop the
    heartbeats), the plugin sees ``ctx.is_cancelled`` (an async one also gets
    ``CancelledError``) and gets :data:`CANCEL_GRACE_SECONDS` to return; a call still
    running then is abandoned and logged, and the attempt ends as cancelled all the same.
    """
    thread: ThreadCall | None = None
    if plugin.is_async:
        coroutine = plugin.function(inputs, config, ctx)
        assert inspect.isawaitable(coroutine)
        work: asyncio.Future[Any] = asyncio.ensure_future(coroutine)
    else:
        call = functools.partial(
            contextvars.copy_context().run, plugin.function, inputs, config, ctx
        )
        thread = await threads.start(call)
        work = thread.future
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        ctx._cancelled.set()
        if on_cancel is not None:
            on_cancel()
        if thread is None:
            work.cancel()
        if not await _returns_within(work, CANCEL_GRACE_SECONDS):
            _abandon(work, thread, threads, ctx)
        raise


async def _returns_within(work: asyncio.Future[Any], seconds: float) -> bool:
    """Wait up to ``seconds`` for a cancelled call (shielded: a second cancellation of the
    activity does not cut the grace short); its outcome no longer matters."""
    waiting = asyncio.ensure_future(asyncio.wait({work}, timeout=seconds))
    while not waiting.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(waiting)
    if work.done() and not work.cancelled():
        work.exception()  # retrieved: the attempt is cancelled whatever the plugin did
    return work.done()


def _abandon(
    work: asyncio.Future[Any], thread: ThreadCall | None, threads: PluginThreads, ctx: PluginContext
) -> None:
    if thread is not None and not thread.abandon():
        return  # it returned at the last moment
    kind = "async" if thread is None else "sync"
    threads.count_abandoned_attempt(kind)
    ctx.logger.warning(
        "node attempt abandoned",
        kind=kind,
        grace_seconds=CANCEL_GRACE_SECONDS,
        abandoned_threads=threads.abandoned,
        detail=(
            "the plugin swallowed its cancellation and keeps running in the worker's event loop"
            if thread is None
            else "the plugin's thread cannot be stopped; it keeps running until it returns"
        ),
    )


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
        self._stopped = False
        self._timer: asyncio.TimerHandle | None = None
        self._interval = 1.0

    def start(self, timeout: timedelta | None) -> None:
        """Beat in the background until :meth:`stop` (None: never). A timer of the event
        loop, not a task: most attempts end before the first beat, and a timer cancelled
        then costs next to nothing."""
        if timeout is None:
            return
        self._interval = _interval(timeout)
        self._timer = self._loop.call_later(self._interval, self._beat)

    def _beat(self) -> None:
        # Runs in the activity's context (copied when the timer was set): heartbeat() finds it.
        if self._stopped:
            return
        activity.heartbeat(*self._details)
        if self._on_beat is not None:
            self._on_beat()
        self._timer = self._loop.call_later(self._interval, self._beat)

    def stop(self) -> None:
        """No more beats, also none the plugin asks for: an attempt that ended (timed out,
        cancelled) must not look alive while its plugin call winds down or is abandoned."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()

    def record(self, *details: Any) -> None:
        """Remember new details and heartbeat them (callable from any thread)."""
        if self._stopped:
            return
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
        """Beat until cancelled (for a task of the caller's own)."""
        if timeout is None:
            return
        interval = _interval(timeout)
        while True:
            await asyncio.sleep(interval)
            activity.heartbeat(*self._details)
            if self._on_beat is not None:
                self._on_beat()


def _interval(timeout: timedelta) -> float:
    """Seconds between beats: a third of the heartbeat timeout, between 0.1 s and 1 s."""
    return min(max(0.1, timeout.total_seconds() / 3), 1.0)
