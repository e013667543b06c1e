"""Plugin threads and activity slots (activities.capacity), without a server: abandoned
threads give their place back, and saturation stops the slots until they return."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from activities.capacity import ActivitySlots, PluginThreads
from tests.helpers.waiting import eventually

CTX: Any = SimpleNamespace(slot_type="activity", task_queue="tq")


async def _value(read: Any) -> Any:
    return read()


async def test_an_abandoned_thread_gives_its_place_back_and_is_counted_until_it_returns() -> None:
    threads = PluginThreads(size=1, max_abandoned=5)
    release = threading.Event()
    hung = await threads.start(lambda: release.wait(30))
    assert hung.abandon()
    assert threads.abandoned == 1
    healthy = await asyncio.wait_for(threads.start(lambda: "ran"), 1)  # the place is free
    assert await asyncio.wait_for(healthy.future, 5) == "ran"
    assert not hung.future.done()  # nobody waits for an abandoned call
    release.set()
    await eventually(lambda: _value(lambda: threads.abandoned), lambda n: n == 0)
    assert not hung.future.done()


async def test_a_call_that_finished_is_not_abandoned() -> None:
    threads = PluginThreads(size=1, max_abandoned=5)
    call = await threads.start(lambda: 7)
    assert await call.future == 7
    assert not call.abandon()
    assert threads.abandoned == 0


async def test_errors_reach_the_caller() -> None:
    threads = PluginThreads(size=1, max_abandoned=5)

    def boom() -> None:
        raise ValueError("boom")

    call = await threads.start(boom)
    with pytest.raises(ValueError, match="boom"):
        await call.future


async def test_saturation_stops_the_activity_slots_until_threads_return() -> None:
    threads = PluginThreads(size=4, max_abandoned=1)
    slots = ActivitySlots(10, threads)
    assert slots.try_reserve_slot(CTX) is not None
    release = threading.Event()
    hung = await threads.start(lambda: release.wait(30))
    hung.abandon()
    assert threads.saturated
    assert slots.try_reserve_slot(CTX) is None
    waiting = asyncio.create_task(slots.reserve_slot(CTX))
    await asyncio.sleep(0.3)  # longer than the supplier's re-check interval
    assert not waiting.done()
    release.set()
    await asyncio.wait_for(waiting, 5)
    assert not threads.saturated


async def test_activity_slots_are_bounded_and_released() -> None:
    slots = ActivitySlots(1, PluginThreads())
    await slots.reserve_slot(CTX)
    waiting = asyncio.create_task(slots.reserve_slot(CTX))
    await asyncio.sleep(0)
    assert not waiting.done()
    slots.release_slot(SimpleNamespace(slot_info=None, permit=None))  # type: ignore[arg-type]
    await asyncio.wait_for(waiting, 1)


def test_only_a_worker_with_synchronous_plugins_gets_the_saturation_guard() -> None:
    """Async plugins never run on plugin threads, so a worker with only those can never be
    saturated: it gets the SDK's fixed activity slots (no Python call per activity)."""
    from temporalio.worker import FixedSizeSlotSupplier

    from engine.hosting.worker import _runs_plugin_threads, _tuner
    from plugins import PluginRegistry

    async def quick(inputs: dict, config: dict, ctx: object) -> dict:
        return {}

    def slow(inputs: dict, config: dict, ctx: object) -> dict:
        return {}

    only_async = PluginRegistry()
    only_async.register("quick", quick, description="async")
    mixed = PluginRegistry()
    mixed.register("quick", quick, description="async")
    mixed.register("slow", slow, description="sync")
    assert not _runs_plugin_threads(only_async)
    assert _runs_plugin_threads(mixed)
    assert _runs_plugin_threads(PluginRegistry.default())  # the built-ins are synchronous
    threads = PluginThreads(2, 1)
    fixed = _tuner(100, None, None)._get_activity_task_slot_supplier()
    assert isinstance(fixed, FixedSizeSlotSupplier)
    assert fixed.num_slots == 100
    guarded = _tuner(100, None, threads)._get_activity_task_slot_supplier()
    assert isinstance(guarded, ActivitySlots)
