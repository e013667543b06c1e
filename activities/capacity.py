"""What a worker can run at once, and what happens to plugin calls that never return.

A synchronous plugin runs on a thread of its own, at most ``size`` of them at once
(:class:`PluginThreads`). A thread cannot be killed: when its attempt ends first (timed out or
cancelled; the node activity waits :data:`CANCEL_GRACE_SECONDS` for it to return) the thread
is *abandoned*: it gives its place back at once, so a hung plugin never queues healthy ones
behind it, and it is counted until it returns. ``max_abandoned`` abandoned threads make the
worker *saturated*: it logs an error, sets the ``orchestrator_worker_saturated`` gauge and
takes no more activities (:class:`ActivitySlots`) until some of them return, instead of
piling up threads. A saturated worker needs a restart (or its hung plugin a fix).

Metrics (the worker's runtime, e.g. its Prometheus endpoint):

``orchestrator_plugin_threads_abandoned``  abandoned threads still running (gauge)
``orchestrator_worker_saturated``  1 while the worker takes no activities (gauge)
``orchestrator_node_attempts_abandoned_total``  attempts whose plugin call was abandoned,
    by ``kind`` (``sync`` or ``async``)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import structlog
from temporalio.common import MetricMeter
from temporalio.worker import (
    CustomSlotSupplier,
    SlotMarkUsedContext,
    SlotPermit,
    SlotReleaseContext,
    SlotReserveContext,
)

log = structlog.get_logger("activities.capacity")

# Seconds a cancelled or timed-out attempt's plugin call gets to return before it is
# abandoned (its activity then ends as cancelled).
CANCEL_GRACE_SECONDS = 5.0
ABANDONED_THREADS_METRIC = "orchestrator_plugin_threads_abandoned"
SATURATED_METRIC = "orchestrator_worker_saturated"
ABANDONED_ATTEMPTS_METRIC = "orchestrator_node_attempts_abandoned_total"


class PluginThreads:
    """Runs synchronous plugin calls on threads of their own, at most ``size`` at once.

    Args:
        size: Calls running at once (callers beyond wait for a place).
        max_abandoned: Abandoned threads that make the worker saturated.
        meter: Where the gauges and the abandoned-attempt counter go.
    """

    def __init__(
        self, size: int = 32, max_abandoned: int = 128, meter: MetricMeter | None = None
    ) -> None:
        if size < 1 or max_abandoned < 1:
            raise ValueError("plugin threads and abandoned threads must be at least 1")
        self.size = size
        self.max_abandoned = max_abandoned
        self._places = asyncio.Semaphore(size)
        self._lock = threading.Lock()
        self._abandoned = 0
        meter = meter or MetricMeter.noop
        self._abandoned_gauge = meter.create_gauge(
            ABANDONED_THREADS_METRIC, "Plugin threads abandoned by ended attempts, still running"
        )
        self._saturated_gauge = meter.create_gauge(
            SATURATED_METRIC, "1 while abandoned plugin threads keep the worker from taking work"
        )
        self._abandoned_attempts = meter.create_counter(
            ABANDONED_ATTEMPTS_METRIC, "Node attempts whose plugin call was abandoned"
        )

    @property
    def abandoned(self) -> int:
        """Abandoned threads still running."""
        return self._abandoned

    @property
    def saturated(self) -> bool:
        """True while abandoned threads keep the worker from taking more work."""
        return self._abandoned >= self.max_abandoned

    async def start(self, call: Callable[[], Any]) -> ThreadCall:
        """Start ``call`` on a new thread once a place is free (cancellable while waiting)."""
        await self._places.acquire()
        started = ThreadCall(self, call, asyncio.get_running_loop())
        thread = threading.Thread(target=started.run, name="plugin", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._places.release()
            raise
        return started

    def count_abandoned_attempt(self, kind: str) -> None:
        """Count an attempt whose plugin call (``sync`` or ``async``) was abandoned."""
        self._abandoned_attempts.with_additional_attributes({"kind": kind}).add(1)

    def _abandon(self, call: ThreadCall) -> bool:
        """Give the call's place back and count its thread; False if it has just finished."""
        with self._lock:
            if call.finished:
                return False
            call.abandoned = True
            self._abandoned += 1
            count = self._abandoned
        self._places.release()
        self._publish(count, entered=count == self.max_abandoned)
        return True

    def _finished(self, call: ThreadCall) -> bool:
        """Record the end of a call's thread; True if it had been abandoned."""
        with self._lock:
            call.finished = True
            if not call.abandoned:
                return False
            self._abandoned -= 1
            count = self._abandoned
        self._publish(count, left=count == self.max_abandoned - 1)
        return True

    def _publish(self, count: int, *, entered: bool = False, left: bool = False) -> None:
        saturated = count >= self.max_abandoned
        self._abandoned_gauge.set(count)
        self._saturated_gauge.set(int(saturated))
        if entered:
            log.error(
                "worker saturated: plugin threads abandoned by timed-out or cancelled attempts "
                "are still running; this worker takes no more activities until some return "
                "(restart it, and fix the plugin that hangs)",
                abandoned_threads=count,
                max_abandoned_threads=self.max_abandoned,
            )
        elif left:
            log.warning(
                "worker no longer saturated: it takes activities again", abandoned_threads=count
            )


class ThreadCall:
    """One synchronous plugin call on its own thread; ``future`` resolves on the event loop."""

    def __init__(
        self, owner: PluginThreads, call: Callable[[], Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.future: asyncio.Future[Any] = loop.create_future()
        self.finished = False
        self.abandoned = False
        self._owner = owner
        self._call = call
        self._loop = loop

    def run(self) -> None:
        """The thread's body: call, then hand the outcome to the loop (unless abandoned)."""
        try:
            result, error = self._call(), None
        except BaseException as exc:  # the loop re-raises it in the activity
            result, error = None, exc
        if self._owner._finished(self):
            return  # nobody waits any more; the place was given back when it was abandoned
        with contextlib.suppress(RuntimeError):  # a closed loop: the worker is gone
            self._loop.call_soon_threadsafe(self._settle, result, error)

    def abandon(self) -> bool:
        """Stop waiting for the thread (it keeps running); False if it has just finished."""
        return self._owner._abandon(self)

    def _settle(self, result: Any, error: BaseException | None) -> None:
        self._owner._places.release()
        if self.future.done():
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)


class ActivitySlots(CustomSlotSupplier):
    """Activity slots of a worker: at most ``size`` at once, and none while its plugin threads
    are saturated (the worker then polls no new activities; running ones go on)."""

    def __init__(self, size: int, threads: PluginThreads) -> None:
        self._size = size
        self._threads = threads
        self._lock = threading.Lock()
        self._used = 0
        self._freed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit:
        self._loop = asyncio.get_running_loop()
        while not self._take():
            self._freed.clear()
            # Woken by a released slot; saturation ends on a plugin thread, so look again
            # now and then too.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), 0.25)
        return SlotPermit()

    def try_reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit | None:
        return SlotPermit() if self._take() else None

    def mark_slot_used(self, ctx: SlotMarkUsedContext) -> None:
        return None

    def release_slot(self, ctx: SlotReleaseContext) -> None:
        with self._lock:
            self._used -= 1
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._freed.set)

    def _take(self) -> bool:
        with self._lock:
            if self._used >= self._size or self._threads.saturated:
                return False
            self._used += 1
            return True
