"""The activities of the long-running modes: watching an event source, running a stream.

Both run for as long as their execution wants (weeks), heartbeat every second with their
checkpoint (so a retry after a worker crash resumes from it), and talk back to their
execution with signals. Both stop gracefully when cancelled: they finish what they have read,
acknowledge it, report where they stopped, then acknowledge the cancellation.

**Event sources** (EventDriven): read the Source node's plugin in small batches; for each
batch, signal the events to the execution, *then* commit them at the source. A crash between
the two re-delivers the batch, which the execution deduplicates by event id, so no event is
lost or handled twice.

**Streams** (Streaming): one task reads micro-batches into a bounded queue (the source runs
at most ``max_batches_in_flight`` batches ahead of the sinks: back-pressure); another takes
each batch through the pipeline (:mod:`engine.runtime.stream_plan`), then commits it at the source
and records the checkpoint. Items never pass through Temporal, so history stays small.
Delivery is at least once: after a crash, the batches read but not yet committed and
checkpointed come again (make a sink idempotent by key, e.g. ``database_writer``'s ``key``,
for an exactly-once effect).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import Any

import structlog
from pydantic import ValidationError
from temporalio import activity
from temporalio.client import Client

from activities._support import TERMINAL_CODES, Heartbeats, failure, invoke, plugin_context
from activities.capacity import PluginThreads
from engine.base.errors import PluginError, PluginErrorCode
from engine.language.options import plugin_config
from engine.runtime.contracts import (
    EVENTS_SIGNAL,
    RUN_STREAM_ACTIVITY,
    SOURCE_CHECKPOINT_SIGNAL,
    STREAM_PROGRESS_SIGNAL,
    WATCH_SOURCE_ACTIVITY,
    EventsSignal,
    IncomingEvent,
    NodeCounters,
    SourceCheckpoint,
    StreamProgress,
    StreamRunInput,
    WatchSourceInput,
)
from engine.runtime.stream_plan import (
    StreamError,
    StreamPlan,
    carried_items,
    plan_stream,
    primary_items,
    sink_count,
)
from plugins import PluginRegistry, Source, SourceItem, SourceSpec, checked_checkpoint

log = structlog.get_logger("activities.long_running")

# A signal carries at most this many events (Temporal caps a payload at 2 MB).
_EVENTS_PER_SIGNAL = 100


class LongRunningActivities:
    """Activities of the EventDriven and Streaming modes, bound to a worker's plugins and
    a client (to signal executions)."""

    def __init__(self, plugins: PluginRegistry, client: Client, threads: PluginThreads) -> None:
        self._plugins = plugins
        self._client = client
        self._threads = threads

    # -- EventDriven ---------------------------------------------------------------------

    @activity.defn(name=WATCH_SOURCE_ACTIVITY)
    async def watch_event_source(self, request: WatchSourceInput) -> Any:
        """Signal the source's events to the execution until cancelled or exhausted; return
        the final checkpoint."""
        info = activity.info()
        spec = self._source(request.plugin_id, request.node_id)
        checkpoint = info.heartbeat_details[0] if info.heartbeat_details else request.checkpoint
        ctx = plugin_context(
            execution_id=request.execution_id,
            workflow_id=request.workflow_id,
            node_id=request.node_id,
            plugin_id=request.plugin_id,
            checkpoint=checkpoint,
        )
        source = await _open(spec, request.config, checkpoint, ctx, request.node_id)
        execution = self._client.get_workflow_handle(request.execution_id)
        heartbeats = Heartbeats(checkpoint)
        beating = asyncio.create_task(heartbeats.run(info.heartbeat_timeout))
        ctx.logger.info("event source started", checkpoint=checkpoint)
        try:
            while not source.exhausted:
                items = await source.read(request.max_items, request.max_wait)
                if not items:
                    continue
                for start in range(0, len(items), _EVENTS_PER_SIGNAL):
                    chunk = items[start : start + _EVENTS_PER_SIGNAL]
                    events = [_event(item, request.node_id) for item in chunk]
                    await execution.signal(EVENTS_SIGNAL, EventsSignal(events=events))
                await source.commit(items)
                heartbeats.record(checked_checkpoint(source.checkpoint(), request.plugin_id))
            return checked_checkpoint(source.checkpoint(), request.plugin_id)
        except asyncio.CancelledError:
            await _report_stopped_source(execution, request, source, ctx)
            raise
        except PluginError as exc:
            ctx.logger.warning("event source failed", error=exc.message)
            raise failure(
                exc.message, exc.code.value, info.attempt, exc.code in TERMINAL_CODES
            ) from exc
        except Exception as exc:
            ctx.logger.warning("event source failed", exc_info=exc)
            raise failure(str(exc) or type(exc).__name__, type(exc).__name__, info.attempt) from exc
        finally:
            beating.cancel()
            await source.close()

    # -- Streaming -----------------------------------------------------------------------

    @activity.defn(name=RUN_STREAM_ACTIVITY)
    async def run_stream(self, request: StreamRunInput) -> StreamProgress:
        """Run the pipeline until the source is exhausted or the activity is cancelled."""
        info = activity.info()
        resumed = _resumed_progress(info.heartbeat_details)
        progress = resumed or StreamProgress(
            counters={k: v.model_copy() for k, v in request.counters.items()},
            checkpoint=request.checkpoint,
        )
        run = _StreamRun(self, request, progress)
        return await run.run()

    def _source(self, plugin_id: str, node_id: str) -> SourceSpec:
        spec = self._plugins.get_source(plugin_id)
        if spec is None:
            raise failure(
                f"Source node '{node_id}': no source plugin '{plugin_id}' is registered on this "
                f"worker; known plugins: {', '.join(self._plugins.ids()) or 'none'}",
                PluginErrorCode.PluginNotFound.value,
                activity.info().attempt,
                non_retryable=True,
            )
        return spec


class _StreamRun:
    """One attempt of the stream activity."""

    def __init__(
        self, owner: LongRunningActivities, request: StreamRunInput, progress: StreamProgress
    ) -> None:
        self._owner = owner
        self._request = request
        self._progress = progress
        self._settings = request.settings
        self._plan: StreamPlan = plan_stream(request.workflow, request.source_node)
        source_node = request.workflow.node(request.source_node)
        self._source_plugin_id = source_node.plugin_id if source_node else request.source_node
        self._queue: asyncio.Queue[list[SourceItem] | None] = asyncio.Queue(
            maxsize=self._settings.max_batches_in_flight
        )
        self._execution = owner._client.get_workflow_handle(request.execution_id)
        self._last_report = time.monotonic()
        self._reporting: asyncio.Task[None] | None = None
        self._configs: dict[str, Any] = {}
        self._source_lock = asyncio.Lock()
        self._source_replays = False  # set from the source's spec when the run starts

    def _counters(self, node_id: str) -> NodeCounters:
        counters = self._progress.counters.get(node_id)
        if counters is None:
            counters = self._progress.counters[node_id] = NodeCounters()
        return counters

    async def run(self) -> StreamProgress:
        request = self._request
        info = activity.info()
        source_node = request.workflow.node(request.source_node)
        assert source_node is not None
        spec = self._owner._source(source_node.plugin_id, source_node.node_id)
        self._source_replays = spec.replays
        plugins = {}
        for step in self._plan.steps:
            plugin = self._owner._plugins.get(step.plugin_id)
            if plugin is None:
                raise failure(
                    f"node '{step.node_id}': no plugin '{step.plugin_id}' is registered on this "
                    "worker",
                    PluginErrorCode.PluginNotFound.value,
                    info.attempt,
                    non_retryable=True,
                )
            plugins[step.node_id] = plugin
            try:
                self._configs[step.node_id] = plugin.check_config(step.config)
            except PluginError as exc:
                raise failure(
                    f"node '{step.node_id}': {exc.message}",
                    exc.code.value,
                    info.attempt,
                    non_retryable=True,
                ) from exc
        self._plugins = plugins
        self._contexts = {
            node_id: plugin_context(
                execution_id=request.execution_id,
                workflow_id=request.workflow.workflow_id,
                node_id=node_id,
                plugin_id=request.workflow.node(node_id).plugin_id,  # type: ignore[union-attr]
            )
            for node_id in self._plan.node_ids
        }
        ctx = self._contexts[request.source_node]
        config = plugin_config(request.workflow.global_configuration, source_node.configuration)
        source = await _open(spec, config, self._progress.checkpoint, ctx, source_node.node_id)
        # Heartbeats carry copies taken at batch boundaries (the SDK serialises them later).
        heartbeats = Heartbeats(self._progress.model_copy(deep=True), on_beat=self._maybe_report)
        self._heartbeats = heartbeats
        beating = asyncio.create_task(heartbeats.run(info.heartbeat_timeout))
        reader = asyncio.create_task(self._read(source))
        pump = asyncio.create_task(self._pump(source))
        ctx.logger.info("stream started", checkpoint=self._progress.checkpoint)
        try:
            # The pump ends when the reader has put its last batch; a reader that fails
            # (a broken connection) must not leave the pump waiting for batches forever.
            await asyncio.wait({pump, reader}, return_when=asyncio.FIRST_EXCEPTION)
            broken = reader.exception() if reader.done() and not reader.cancelled() else None
            if broken is not None:
                raise broken
            await asyncio.shield(pump)
            await reader
            self._progress.exhausted = True
            self._progress.final = True
            ctx.logger.info("stream exhausted", checkpoint=self._progress.checkpoint)
            return self._progress
        except asyncio.CancelledError:
            # Graceful stop: read nothing more, finish what was read, report, then go.
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await self._queue.put(None)
            await asyncio.gather(pump, return_exceptions=True)
            self._progress.final = True
            try:
                await self._execution.signal(STREAM_PROGRESS_SIGNAL, self._progress)
            except Exception as exc:  # it resumes from the last progress report instead
                ctx.logger.error("stream checkpoint not recorded: signal failed", error=str(exc))
            ctx.logger.info("stream stopped", checkpoint=self._progress.checkpoint)
            raise
        except (PluginError, StreamError) as exc:
            reader.cancel()
            code = (
                exc.code if isinstance(exc, PluginError) else PluginErrorCode.PluginExecutionFailed
            )
            message = exc.message if isinstance(exc, PluginError) else str(exc)
            ctx.logger.warning("stream failed", error=message)
            raise failure(message, code.value, info.attempt, code in TERMINAL_CODES) from exc
        except Exception as exc:
            reader.cancel()
            ctx.logger.warning("stream failed", exc_info=exc)
            raise failure(str(exc) or type(exc).__name__, type(exc).__name__, info.attempt) from exc
        finally:
            beating.cancel()
            reader.cancel()
            pump.cancel()
            if self._reporting is not None:
                self._reporting.cancel()
            await source.close()

    async def _read(self, source: Source) -> None:
        """Fill the queue with micro-batches; blocks while it is full (back-pressure)."""
        while not source.exhausted:
            async with self._source_lock:  # a source is never called concurrently
                items = await source.read(self._settings.batch_size, self._settings.batch_max_wait)
            if items:
                await self._queue.put(items)
        await self._queue.put(None)

    async def _pump(self, source: Source) -> None:
        """Take batches through the pipeline, commit them, checkpoint."""
        while True:
            batch = await self._queue.get()
            if batch is None:
                return
            counters = await self._process([item.value for item in batch])
            async with self._source_lock:
                await source.commit(batch)
                # Counters and checkpoint change together: every heartbeat and progress
                # report is a consistent pair, so a retry resuming from one counts each item
                # once (counting before the commit counted a lost batch twice).
                self._progress = StreamProgress(
                    counters=counters,
                    checkpoint=checked_checkpoint(source.checkpoint(), self._source_plugin_id),
                )
            self._heartbeats.record(self._progress.model_copy(deep=True))

    async def _process(self, values: list[dict[str, Any]]) -> dict[str, NodeCounters]:
        """Take one batch through the pipeline; returns the counters after it (the reported
        ones change only once the batch is committed)."""
        started = time.monotonic()
        counted = {node_id: c.model_copy() for node_id, c in self._progress.counters.items()}

        def counters_of(node_id: str) -> NodeCounters:
            return counted.setdefault(node_id, NodeCounters())

        source = counters_of(self._plan.source)
        # The batches committed before this one number it (PluginContext.stream_batch): they
        # are counted with the checkpoint, so a resume numbers a replayed batch the same.
        number = source.batches
        source.batches += 1
        source.items_out += len(values)
        outputs: dict[str, dict[str, Any] | list[dict[str, Any]]] = {self._plan.source: values}
        for step in self._plan.steps:
            inputs: dict[str, list[dict[str, Any]]] = {}
            for step_input in step.inputs:
                upstream = outputs.get(step_input.upstream)
                if upstream is None:
                    continue
                inputs.setdefault(step_input.key, []).extend(carried_items(step_input, upstream))
            taken = sum(len(items) for items in inputs.values())
            if not taken:
                continue
            counters = counters_of(step.node_id)
            node_started = time.monotonic()
            try:
                output = await invoke(
                    self._plugins[step.node_id],
                    dict(inputs),
                    self._configs[step.node_id],
                    dataclasses.replace(
                        self._contexts[step.node_id],
                        stream_batch=number,
                        stream_replays=self._source_replays,
                    ),
                    self._owner._threads,
                )
            except Exception as exc:
                failed = self._counters(step.node_id)  # errors count whether or not committed
                failed.errors += 1
                failed.last_error = f"{type(exc).__name__}: {exc}"
                raise
            if not isinstance(output, dict):
                raise StreamError(
                    f"node '{step.node_id}' returned {type(output).__name__}, expected an object"
                )
            outputs[step.node_id] = output
            counters.batches += 1
            counters.items_in += taken
            counters.items_out += (
                sink_count(output, taken)
                if step.is_sink
                else len(primary_items(output, step.node_id))
            )
            counters.last_batch_ms = round((time.monotonic() - node_started) * 1000, 3)
            if step.is_sink:
                counters.last_result = output
        source.last_batch_ms = round((time.monotonic() - started) * 1000, 3)
        return counted

    def _maybe_report(self) -> None:
        """Every ``progress_interval`` seconds, signal counters and checkpoint."""
        now = time.monotonic()
        busy = self._reporting is not None and not self._reporting.done()
        if busy or now - self._last_report < self._settings.progress_interval:
            return
        self._last_report = now
        self._reporting = asyncio.create_task(self._report(self._progress.model_copy(deep=True)))

    async def _report(self, progress: StreamProgress) -> None:
        try:
            await self._execution.signal(STREAM_PROGRESS_SIGNAL, progress)
        except Exception as exc:  # the execution may be continuing as new; the next one lands
            log.debug("progress signal failed", error=str(exc))


async def _open(
    spec: SourceSpec, config: dict[str, Any], checkpoint: Any, ctx: Any, node_id: str
) -> Source:
    try:
        if spec.config_model is not None:
            declared = {k: v for k, v in config.items() if k in spec.config_model.model_fields}
            try:
                spec.config_model.model_validate(declared)
            except ValidationError as exc:
                raise PluginError(
                    PluginErrorCode.InvalidConfiguration,
                    f"configuration of source '{spec.plugin_id}': {exc.errors()[0]['msg']} "
                    f"({'.'.join(str(p) for p in exc.errors()[0]['loc'])})",
                ) from None
        return await spec.open(config, checkpoint, ctx)
    except PluginError as exc:
        raise failure(
            f"Source node '{node_id}': {exc.message}",
            exc.code.value,
            activity.info().attempt,
            exc.code in TERMINAL_CODES,
        ) from exc


async def _report_stopped_source(
    execution: Any, request: WatchSourceInput, source: Source, ctx: Any
) -> None:
    """Signal where the stopped source resumes. A checkpoint too large to record fails the
    source (its position would be lost); a signal that cannot be delivered is logged as an
    error (the source then resumes from an earlier checkpoint: its events since come again,
    deduplicated by id)."""
    try:
        checkpoint = checked_checkpoint(source.checkpoint(), request.plugin_id)
    except PluginError as exc:
        ctx.logger.error("event source checkpoint not recorded", error=exc.message)
        raise failure(
            f"Source node '{request.node_id}': {exc.message}",
            exc.code.value,
            activity.info().attempt,
            non_retryable=True,
        ) from exc
    final = SourceCheckpoint(node_id=request.node_id, checkpoint=checkpoint)
    try:
        await execution.signal(SOURCE_CHECKPOINT_SIGNAL, final)
    except Exception as exc:
        ctx.logger.error("event source checkpoint not recorded: the signal failed", error=str(exc))
    ctx.logger.info("event source stopped", checkpoint=checkpoint)


def _event(item: SourceItem, node_id: str) -> IncomingEvent:
    return IncomingEvent(
        event_id=f"{node_id}:{item.item_id}",
        event_type=item.event_type,
        payload=item.value,
        source=node_id,
        redelivered=item.redelivered,
    )


def _resumed_progress(details: Any) -> StreamProgress | None:
    """The progress of a previous attempt, from its last heartbeat."""
    if not details:
        return None
    with contextlib.suppress(ValueError, TypeError):
        return StreamProgress.model_validate(details[0])
    return None
