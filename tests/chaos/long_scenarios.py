"""Worker kills at each lifecycle phase of EventDriven and Streaming executions.

Scenarios (``async def scenario(h, rng, **options) -> {execution_id: LongExpected}``, like
:mod:`tests.chaos.scenarios`):

* :func:`long_running_kills` takes one execution through the named phases in order and
  SIGKILLs the polling worker at each (a warm standby takes over): ``running``, ``pausing``
  (right after pause, while the source stops), ``paused``, ``resuming`` (right after
  resume), ``switching_version`` (right after a new definition version reached the
  execution, while its source stops), ``draining`` (while the source stops for
  continue-as-new) and ``cancelling`` (right after cancellation was requested, on a second
  execution). Then it ends the source at a known item, and the invariant
  (:mod:`tests.chaos.long_invariants`) checks that every item was processed exactly once.
  ``retry`` puts a user's ``retry`` block on the definition (worker losses must not use it
  up); EventDriven runs continue as new every ``events_per_run`` events. Streaming's
  ``draining`` needs a server that suggests continue-as-new early
  (``h.short_history``).
* :func:`file_storm`: files land in a drop zone watched by ``file_system_monitor`` while
  the execution continues as new every ``events_per_run`` events and workers are killed.
* :func:`failing_source`: a source that fails on every read still fails the execution after
  its configured attempts (plugin errors count; only worker losses do not).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import PendingActivityState

from engine import ConnectionType, PluginError, PluginErrorCode, WorkflowExecutionMode
from engine.language.models import (
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionContext,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.runtime.contracts import RUN_STREAM_ACTIVITY, WATCH_SOURCE_ACTIVITY
from tests.chaos.harness import Harness
from tests.chaos.long_invariants import LongExpected
from tests.helpers.builders import edge, node, workflow
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import eventually

Mode = WorkflowExecutionMode
Status = WorkflowExecutionStatus
PHASES = (
    "running",
    "pausing",
    "paused",
    "resuming",
    "switching_version",
    "draining",
    "cancelling",
)
HEARTBEAT = 2  # seconds: how soon a lost source or stream is noticed
CACHE = 100  # workflows a worker of these scenarios keeps in its cache
NODE_RETRY = {"max_attempts": 20, "initial_interval": 0.1, "maximum_interval": 0.5}
_SOURCE_ACTIVITIES = (WATCH_SOURCE_ACTIVITY, RUN_STREAM_ACTIVITY)
_STOPPING = PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
T = TypeVar("T")


class Relay:
    """The worker that polls now and warm standbys that take over after each kill.

    These workers cache workflows, as in production: uncached, every workflow task of a busy
    long-running execution replays its whole history, and on a loaded machine the worker
    falls behind its queries. Replay is checked afterwards, uncached, by the replayers."""

    def __init__(self, h: Harness, active: WorkerProcess, standbys: list[WorkerProcess]) -> None:
        self._h = h
        self.active = active
        self._standbys = standbys
        self._starting: list[asyncio.Task[list[WorkerProcess]]] = []

    @classmethod
    async def start(cls, h: Harness, standbys: int = 3) -> Relay:
        active, *rest = await h.workers_up(1, standby=standbys, max_cached_workflows=CACHE)
        return cls(h, active, rest)

    async def kill(self, during: str) -> None:
        """SIGKILL the polling worker; a standby polls in its place, another warms up."""
        self._h.kill(self.active, during)
        if not self._standbys:
            self._standbys += await self._starting.pop(0)
        self.active = self._standbys.pop(0)
        await self._h.go(self.active)
        standby = self._h.workers_up(0, standby=1, max_cached_workflows=CACHE)
        self._starting.append(asyncio.create_task(standby))
        if self._starting[0].done():
            self._standbys += await self._starting.pop(0)

    async def settle(self) -> None:
        """Wait for the standbys still starting (the harness then stops them all)."""
        for task in self._starting:
            await asyncio.gather(task, return_exceptions=True)


# -- definitions ---------------------------------------------------------------------------


def _source(plugin_id: str, **config: Any) -> WorkflowNode:
    return WorkflowNode(
        node_id="feed",
        plugin_id=plugin_id,
        node_type=WorkflowNodeType.Source,
        configuration={**config, "heartbeat_timeout": HEARTBEAT},
    )


def event_definition(
    h: Harness, name: str, feed: WorkflowNode, key: str = "n", **settings: Any
) -> PluginWorkflow:
    """feed -> take: every event is one pass taking its item (recorded in the ledger)."""
    take = node(
        "take", "take_item", seconds=0.1, key=key, heartbeat_timeout=HEARTBEAT, retry=NODE_RETRY
    )
    settings = {"max_concurrent_events": 10, **settings}
    definition = workflow(h.unique(name), [feed, take], mode=Mode.EventDriven, **settings)
    definition.connections = [
        WorkflowConnection(
            source_node="feed", target_node="take", connection_type=ConnectionType.Event
        )
    ]
    return definition


def stream_definition(h: Harness, name: str, feed: WorkflowNode, **settings: Any) -> PluginWorkflow:
    """feed -> sink in micro-batches of 10 (every item recorded in the ledger)."""
    sink = node("sink", "sink_items", delay=0.05)
    return workflow(
        h.unique(name),
        [feed, sink],
        [edge("feed", "sink")],
        mode=Mode.Streaming,
        batch_size=10,
        batch_max_wait=0.2,
        max_batches_in_flight=2,
        progress_interval=0.5,
        **settings,
    )


def _with_feed(definition: PluginWorkflow, **config: Any) -> PluginWorkflow:
    changed = definition.model_copy(deep=True)
    feed = changed.node("feed")
    assert feed is not None
    feed.configuration.update(config)
    return changed


# -- observing -----------------------------------------------------------------------------


async def after_kill(call: Callable[[], Awaitable[T]], *, done_if_invalid: bool = False) -> T:
    """``call()``, sent again while no worker answers (the killed one held a workflow task,
    which Temporal gives to another worker only after its 10 s timeout). With
    ``done_if_invalid`` an InvalidState answer to a repeat counts as done: the first one
    arrived (pause, resume)."""
    deadline = asyncio.get_running_loop().time() + 120
    repeated = False
    while True:
        try:
            return await call()
        except PluginError as exc:
            if exc.code is PluginErrorCode.InvalidState and repeated and done_if_invalid:
                return None  # type: ignore[return-value]
            late = asyncio.get_running_loop().time() > deadline
            if exc.code is not PluginErrorCode.WorkerUnavailable or late:
                raise
            repeated = True


async def status(h: Harness, execution_id: str) -> WorkflowExecutionContext:
    """The execution's status query, asked again while no worker answers."""
    return await after_kill(lambda: h.orchestrator.get_execution_status(execution_id))


async def progress(h: Harness, execution_id: str) -> int:
    """Events processed (EventDriven) or items read (Streaming) as the execution reports."""
    data = (await status(h, execution_id)).execution_data
    return int(data.get("events_processed", data.get("items_read")) or 0)


async def source_activity(h: Harness, execution_id: str) -> str:
    """ "stopping" (cancellation requested), "running" or "" (no source activity)."""
    handle = h.orchestrator.client.get_workflow_handle(execution_id)
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name in _SOURCE_ACTIVITIES:
            return "stopping" if pending.state == _STOPPING else "running"
    return ""


async def _advance(h: Harness, execution_id: str, by: int = 1) -> None:
    start = await progress(h, execution_id)
    await eventually(lambda: progress(h, execution_id), lambda n: n >= start + by, timeout=60)


async def _stopped(h: Harness, execution_id: str) -> None:
    await eventually(lambda: source_activity(h, execution_id), lambda s: s == "", timeout=60)


# -- the phases ----------------------------------------------------------------------------


class _Tour:
    """One execution taken through phases, a worker killed at each."""

    def __init__(self, h: Harness, relay: Relay, definition: PluginWorkflow, run: str) -> None:
        self.h = h
        self.relay = relay
        self.definition = definition
        self.run = run
        self.paused = False
        self.doomed: str | None = None  # the execution the cancelling phase cancels

    async def pause(self) -> None:
        await after_kill(
            lambda: self.h.orchestrator.pause_execution(self.run), done_if_invalid=True
        )
        self.paused = True

    async def resume(self) -> None:
        await after_kill(
            lambda: self.h.orchestrator.resume_execution(self.run), done_if_invalid=True
        )
        self.paused = False

    async def update(self, **feed: Any) -> None:
        """A new version of the definition with ``feed`` in the source's configuration
        (the registry entity may wait for a worker too)."""
        changed = _with_feed(self.definition, **feed)
        self.definition = await after_kill(lambda: self.h.orchestrator.update_workflow(changed))

    async def version_reached(self, version: int, interval: float = 0.1) -> None:
        await eventually(
            lambda: status(self.h, self.run),
            lambda c: c.execution_data["workflow_version"] == version,
            interval=interval,
        )

    async def running(self, rng: random.Random) -> None:
        if self.paused:
            await self.resume()
        await _advance(self.h, self.run)
        await asyncio.sleep(rng.random() * 0.5)
        await self.relay.kill("running")

    async def pausing(self, rng: random.Random) -> None:
        if self.paused:
            await self.resume()
        await _advance(self.h, self.run)
        await self.pause()
        await self.relay.kill("pausing")

    async def paused_phase(self, rng: random.Random) -> None:
        if not self.paused:
            await self.pause()
        await _stopped(self.h, self.run)
        await asyncio.sleep(rng.random() * 0.5)
        await self.relay.kill("paused")
        now = (await status(self.h, self.run)).status
        self.h.expect(now is Status.Paused, f"{now.value} after a kill while paused")

    async def resuming(self, rng: random.Random) -> None:
        if not self.paused:
            await self.pause()
            await _stopped(self.h, self.run)
        await self.resume()
        await self.relay.kill("resuming")

    async def switching_version(self, rng: random.Random) -> None:
        if self.paused:
            await self.resume()
        await _advance(self.h, self.run)
        tag = rng.randrange(10**6)
        await self.update(tag=tag)
        await self.version_reached(self.definition.version, interval=0.02)
        await self.relay.kill("switching version")

    async def draining(self, rng: random.Random) -> None:
        if self.paused:
            await self.resume()
        await eventually(
            lambda: source_activity(self.h, self.run),
            lambda s: s == "stopping",
            timeout=90,
            interval=0.02,
        )
        await self.relay.kill("draining")

    async def cancelling(self, rng: random.Random) -> None:
        assert self.doomed is not None
        await _advance(self.h, self.doomed)
        doomed = self.doomed
        await after_kill(lambda: self.h.orchestrator.cancel_execution(doomed))
        await self.relay.kill("cancelling")

    async def finish(self, mode: Mode) -> int:
        """End the source at a known item: pause, let it stop, make the next version's
        feed finite a little past what was received, resume. Returns the item count."""
        if not self.paused:
            await self.pause()
        await _stopped(self.h, self.run)
        data = (await status(self.h, self.run)).execution_data
        seen = data.get("events_received", data.get("items_read", 0))
        count = int(seen) + 30
        await self.update(count=count)
        await self.version_reached(self.definition.version)
        await self.resume()
        if mode is Mode.EventDriven:
            await eventually(lambda: progress(self.h, self.run), lambda n: n >= count, timeout=120)
            await self.h.orchestrator.cancel_execution(self.run)
        return count


async def long_running_kills(
    h: Harness,
    rng: random.Random,
    *,
    mode: Mode = Mode.EventDriven,
    phases: tuple[str, ...] = PHASES,
    retry: dict[str, Any] | None = None,
    events_per_run: int = 100,
) -> dict[str, LongExpected]:
    """Kill the polling worker at each of ``phases`` (see the module documentation)."""
    unknown = set(phases) - set(PHASES)
    assert not unknown, f"unknown phases {unknown}"
    assert mode is Mode.EventDriven or "draining" not in phases or h.short_history, (
        "a stream drains for continue-as-new only on a server that suggests it early"
    )
    relay = await Relay.start(h)
    feed = _source("chaos_feed", delay=0.03 if mode is Mode.EventDriven else 0.01)
    settings: dict[str, Any] = {"retry": retry} if retry else {}
    if mode is Mode.EventDriven:
        definition = event_definition(h, "kills", feed, events_per_run=events_per_run, **settings)
    else:
        definition = stream_definition(h, "kills", feed, **settings)
    await h.orchestrator.register_workflow(definition)
    tour = _Tour(
        h, relay, definition, await h.orchestrator.execute_workflow(definition.workflow_id)
    )
    expected: dict[str, LongExpected] = {}
    if "cancelling" in phases:
        tour.doomed = await h.orchestrator.execute_workflow(definition.workflow_id)
        expected[tour.doomed] = LongExpected(mode, Status.Cancelled)
    steps = {name: getattr(tour, name) for name in PHASES if name != "paused"}
    steps["paused"] = tour.paused_phase
    try:
        for phase in phases:
            await steps[phase](rng)
        count = await tour.finish(mode)
    finally:
        await relay.settle()
    final = Status.Cancelled if mode is Mode.EventDriven else Status.Completed
    expected[tour.run] = LongExpected(mode, final, items=count)
    return expected


async def file_storm(
    h: Harness,
    rng: random.Random,
    *,
    files: int = 400,
    kills: int = 4,
    events_per_run: int = 100,
) -> dict[str, LongExpected]:
    """``files`` files land in a drop zone watched by ``file_system_monitor``; the execution
    continues as new every ``events_per_run`` events; ``kills`` workers are SIGKILLed along
    the way, every other one while the source stops for continue-as-new. Every file is one
    event, processed exactly once."""
    relay = await Relay.start(h)
    zone = h.directory / "zone"
    zone.mkdir()
    feed = _source(
        "file_system_monitor", watch_path=str(zone), poll_interval=0.1, settle_seconds=0.1
    )
    definition = event_definition(
        h, "storm", feed, key="name", events_per_run=events_per_run, max_concurrent_events=10
    )
    await h.orchestrator.register_workflow(definition)
    run = await h.orchestrator.execute_workflow(definition.workflow_id)
    writer = asyncio.create_task(_drop_files(zone, files, rate=40.0))
    try:
        for k in range(kills):
            if k % 2 == 0:  # while the source stops for continue-as-new (or at the end)
                await eventually(
                    lambda: _draining_or_done(h, run, files),
                    bool,
                    timeout=120,
                    interval=0.02,
                )
                await relay.kill("file storm, draining")
                continue
            target = min(files, await progress(h, run) + events_per_run // 2)
            await eventually(lambda: progress(h, run), lambda n, at=target: n >= at, timeout=120)
            await asyncio.sleep(rng.random() * 0.5)
            await relay.kill("file storm, running")
        await writer
        await eventually(lambda: progress(h, run), lambda n: n >= files, timeout=180)
        await h.orchestrator.cancel_execution(run)
    finally:
        writer.cancel()
        await relay.settle()
    return {run: LongExpected(Mode.EventDriven, Status.Cancelled, items=files)}


async def _draining_or_done(h: Harness, run: str, files: int) -> bool:
    return await source_activity(h, run) == "stopping" or await progress(h, run) >= files


async def _drop_files(zone: Path, files: int, rate: float) -> None:
    """Land ``files`` files atomically, about ``rate`` a second."""
    for i in range(files):
        temporary = zone / f".f{i:05d}.tmp"
        await asyncio.to_thread(temporary.write_text, f"file {i}\n")
        await asyncio.to_thread(temporary.rename, zone / f"f{i:05d}.txt")
        await asyncio.sleep(1 / rate)


async def failing_source(
    h: Harness, rng: random.Random, *, mode: Mode = Mode.EventDriven
) -> dict[str, LongExpected]:
    """A source failing on every read, with a ``retry`` block of 3 attempts: the execution
    fails after exactly 3 (genuine plugin errors count against the configured retries)."""
    await h.workers_up(1)
    feed = _source("chaos_feed", fail=True)
    retry = {"max_attempts": 3, "initial_interval": 0.1, "maximum_interval": 0.2}
    if mode is Mode.EventDriven:
        definition = event_definition(h, "failing", feed, retry=retry)
    else:
        definition = stream_definition(h, "failing", feed, retry=retry)
    await h.orchestrator.register_workflow(definition)
    run = await h.orchestrator.execute_workflow(definition.workflow_id)
    context = await h.orchestrator.wait_for_completion(run, 60)
    errors = "; ".join(context.error_messages)
    h.expect("after 3 attempts" in errors, f"the source failed with: {errors}")
    return {run: LongExpected(mode, Status.Failed)}


LONG_SCENARIOS = {
    "long_running_kills": long_running_kills,
    "file_storm": file_storm,
    "failing_source": failing_source,
}


def needs_short_history(name: str, options: dict[str, Any]) -> bool:
    """Whether the scenario ``name`` with ``options`` must run on a short-history server."""
    return (
        name == "long_running_kills"
        and options.get("mode") is Mode.Streaming
        and "draining" in options.get("phases", PHASES)
    )
