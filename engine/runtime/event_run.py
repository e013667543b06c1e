"""EventDriven executions: live until cancelled, one pass through the graph per event.

Pure asyncio; the workflow injects how nodes run (activities) and how sources are watched (a
long-running activity per Source node that signals events back). Rules:

* Events come from Source nodes and from clients (``send_event``). Each is deduplicated by
  its id (a window of the last ``DEDUP_WINDOW`` ids, carried across continue-as-new), then
  queued in arrival order.
* Each event runs one *pass* (:mod:`engine.runtime.passes`) under the batch rules. Passes run
  concurrently up to ``global_configuration.max_concurrent_events`` (default 10); the rest
  wait in order. A failed pass is recorded (counters, events) and does not end the execution.
* Pause: sources stop (events wait at the source) and no pass starts; running passes finish.
  Resume restarts the sources from their checkpoints.
* A source that must start again (resume, a new version, back-pressure released) while it is
  still stopping starts once it has stopped, and no pass starts before it
  (:meth:`EventRun.restart_sources_first`): what the loop starts is then the same whether
  the source's end or the event that restarts it was handled first in a workflow task, as
  replays on another worker may order them.
* A new definition version is adopted at the next event: running passes finish on the version
  they started with; sources restart on the new one.
* Continue-as-new when Temporal suggests it or after ``events_per_run`` events: sources stop
  and report their checkpoints, running passes finish, and the queue, checkpoints,
  counters, dedup window and the tail of the event log travel to the next run.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.graph import Graph
from engine.language.models import PluginWorkflow, WorkflowEventType, WorkflowNodeType
from engine.language.options import GlobalOptions, global_options, plugin_config
from engine.language.validation import compile_workflow
from engine.runtime.contracts import (
    DEDUP_WINDOW,
    Admission,
    IncomingEvent,
    LongRunState,
    NodeCounters,
)
from engine.runtime.interpreter import Interpreter, NodeRunner
from engine.runtime.lifecycle import ContinueAsNew
from engine.runtime.long_run import EventType, LongRun, Status
from engine.runtime.passes import pass_workflow
from engine.runtime.scheduler import RoutingError

# Sources stop while this many events wait, and start again below half of it.
MAX_QUEUED_EVENTS = 500


class SourceWatcher(Protocol):
    """Watches one Source node until cancelled (raises ``asyncio.CancelledError``), it fails
    for good (raises PluginError) or it is exhausted (returns its final checkpoint)."""

    def __call__(
        self, node_id: str, plugin_id: str, config: dict[str, Any], checkpoint: Any
    ) -> Coroutine[Any, Any, Any]: ...


class EventRun(LongRun):
    """Runs one EventDriven execution (or one Temporal run of it)."""

    def __init__(
        self,
        workflow: PluginWorkflow,
        *,
        execution_id: str,
        state: LongRunState | None,
        runner: NodeRunner,
        watch: SourceWatcher,
        clock: Callable[[], datetime],
        should_continue_as_new: Callable[[], bool],
        meter_conditions: Callable[[], bool] | None = None,
        map_entry_taken: Callable[[], bool] | None = None,
        unroutable_fails_pass: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(
            workflow,
            execution_id=execution_id,
            state=state,
            clock=clock,
            should_continue_as_new=should_continue_as_new,
        )
        self._runner = runner
        self._meter_conditions = meter_conditions
        self._map_entry_taken = map_entry_taken
        self._unroutable_fails_pass = unroutable_fails_pass
        self._watch = watch
        self._passes: dict[int, asyncio.Task[None]] = {}
        self._sources: dict[str, asyncio.Task[None]] = {}
        self._source_versions: dict[str, int] = {}
        self._graphs: dict[tuple[str, str, int], Graph] = {}
        self._seen = set(self.state.seen)
        self._received_this_run = 0
        self._failure: str | None = None
        self._sources_held = False  # back-pressure: too many events queued
        self._stopping: set[str] = set()  # sources cancelled that have not ended yet
        self._sources_first = False  # see restart_sources_first

    # -- inputs (signal handlers) ------------------------------------------------------

    def accept(self, events: list[IncomingEvent]) -> None:
        """Queue new events (duplicates by id are dropped)."""
        for event in events:
            key = hashlib.sha256(event.event_id.encode()).hexdigest()[:16]
            if key in self._seen:
                continue
            self._seen.add(key)
            self.state.seen.append(key)
            if len(self.state.seen) > DEDUP_WINDOW:
                self._seen.discard(self.state.seen.pop(0))
            if not event.source:
                event = event.model_copy(update={"source": self._default_source()})
            self.state.queue.append(event)
            self.state.received += 1
            self._received_this_run += 1
            self.emit(
                EventType.event_received,
                node_id=event.source,
                details={"event_id": event.event_id, "event_type": event.event_type},
            )
        self._wake.set()

    def admission(self, history_length: int) -> Admission:
        """Whether a client should send events now: not while the queue is full or the run is
        long past the point where it should have continued as new (signals arriving without
        pause can hold a continue-as-new back; senders wait instead)."""
        queued = len(self.state.queue)
        if self._draining:
            return Admission(accepting=False, queued=queued, reason="continuing as new")
        if queued >= MAX_QUEUED_EVENTS:
            return Admission(accepting=False, queued=queued, reason=f"{queued} events wait")
        budget = self._options.max_history_events
        if history_length > budget + budget // 4:
            return Admission(
                accepting=False,
                queued=queued,
                reason=f"continuing as new ({history_length} history events)",
            )
        return Admission(accepting=self.status is not Status.Cancelled, queued=queued)

    def restart_sources_first(self) -> None:
        """Start no pass while a source that must run again is still stopping; it starts
        first once it has stopped. (The workflow turns this on for new runs: histories
        recorded before started the passes at once and the source after them, or before
        them, depending on how the workflow task that restarted it was ordered.)"""
        self._sources_first = True

    def record_checkpoint(self, node_id: str, checkpoint: Any) -> None:
        self.state.checkpoints[node_id] = checkpoint

    def _default_source(self) -> str:
        for node in self.workflow.nodes:
            if node.node_type is WorkflowNodeType.Source:
                return node.node_id
        return ""

    def _definition_changed(self) -> None:
        self._graphs.clear()

    @property
    def _options(self) -> GlobalOptions:
        return global_options(self.workflow.global_configuration)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> Status:
        """Run until cancelled (returns Cancelled) or a source fails for good (Failed).

        Raises:
            ContinueAsNew: drained and ready to continue as new with the carried state.
        """
        if self._fresh:
            self.emit(EventType.workflow_started)
        try:
            while True:
                if self._failure is not None:
                    await self._stop_everything()
                    self.finish(Status.Failed, self._failure)
                    return Status.Failed
                wants_new_run = (
                    self._should_continue_as_new()
                    or self._received_this_run >= self._options.events_per_run
                )
                if wants_new_run:
                    self._draining = True
                restarting = self._sync_sources()
                if not (restarting and self._sources_first):
                    self._launch_passes()
                if self._draining and not self._passes and not self._sources:
                    raise ContinueAsNew(self.carried_state())
                await self._wake.wait()
                self._wake.clear()
        except asyncio.CancelledError:
            await self._stop_everything()
            self.finish(Status.Cancelled)
            return Status.Cancelled

    def _sync_sources(self) -> bool:
        """Start and stop sources as the run's state wants them; True while a source that
        should run is still stopping (it starts again once it has ended)."""
        queued = len(self.state.queue)
        if queued >= MAX_QUEUED_EVENTS:
            self._sources_held = True
        elif queued < MAX_QUEUED_EVENTS // 2:
            self._sources_held = False
        active = self.status is Status.Running and not self._draining and not self._sources_held
        version = self.workflow.version
        wanted = {
            node.node_id: node
            for node in self.workflow.nodes
            if active
            and node.node_type is WorkflowNodeType.Source
            and node.node_id not in self.state.exhausted
        }
        for node_id in list(self._sources):
            if node_id not in wanted or self._source_versions.get(node_id) != version:
                self._sources[node_id].cancel()  # it reports its checkpoint and ends
                self._stopping.add(node_id)
        restarting = False
        for node_id, node in wanted.items():
            if node_id in self._sources:
                restarting = restarting or node_id in self._stopping
                continue
            self._source_versions[node_id] = version
            config = plugin_config(self.workflow.global_configuration, node.configuration)
            self._sources[node_id] = asyncio.create_task(
                self._watch_source(node_id, node.plugin_id, config)
            )
        return restarting

    async def _watch_source(self, node_id: str, plugin_id: str, config: dict[str, Any]) -> None:
        counters = self.counters(node_id)
        counters.running += 1
        counters.last_started_at = self.now_iso()
        self.emit(EventType.node_started, node_id=node_id)
        try:
            checkpoint = await self._watch(
                node_id, plugin_id, config, self.state.checkpoints.get(node_id)
            )
            self.state.checkpoints[node_id] = checkpoint
            self.state.exhausted.append(node_id)
            self.emit(EventType.node_completed, node_id=node_id, details={"exhausted": True})
        except asyncio.CancelledError:
            pass  # stopped by us: pause, redeploy, continue-as-new or cancellation
        except PluginError as exc:
            counters.errors += 1
            counters.last_error = exc.message
            self._failure = f"event source '{node_id}' failed: {exc.message}"
            self.emit(EventType.node_failed, node_id=node_id, error=self._failure)
        finally:
            counters.running -= 1
            counters.last_completed_at = self.now_iso()
            self._sources.pop(node_id, None)
            self._stopping.discard(node_id)
            self._wake.set()

    def _launch_passes(self) -> None:
        limit = self._options.max_concurrent_events
        while (
            self.state.queue
            and len(self._passes) < limit
            and self.status is Status.Running
            and self._failure is None
            and not self._draining
        ):
            event = self.state.queue.pop(0)
            self.state.passes += 1
            pass_id = self.state.passes
            self._passes[pass_id] = asyncio.create_task(self._run_pass(pass_id, event))

    async def _run_pass(self, pass_id: int, event: IncomingEvent) -> None:
        details = {"pass": pass_id, "event_id": event.event_id}
        try:
            graph = self._pass_graph(event)
            interpreter = Interpreter(
                graph,
                execution_id=self.execution_id,
                input_data=event.payload,
                runner=self._runner,
                clock=self._clock,
                completed={event.source: event.payload},
                pass_id=pass_id,
                emit=lambda kind, fields: self._pass_event(kind, fields, details),
                meter_conditions=self._meter_conditions,
                map_entry_taken=self._map_entry_taken,
            )
            if interpreter.unroutable is not None and not self._unroutable_fails_pass_now():
                # As passes did before: the error ended the pass's task, which counted
                # nothing and kept its slot of max_concurrent_events.
                raise RoutingError(interpreter.unroutable)
            status = await interpreter.run()
            errors = interpreter.error_messages
        except PluginError as exc:
            status, errors = Status.Failed, [exc.message]
        except asyncio.CancelledError:
            status, errors = Status.Cancelled, ["cancelled"]
        if status is Status.Completed:
            self.state.processed += 1
        else:
            self.state.failed += 1
        self.emit(
            EventType.event_processed,
            error=errors[0] if status is not Status.Completed and errors else None,
            details={**details, "status": status.value},
        )
        self._passes.pop(pass_id, None)
        self._wake.set()

    def _unroutable_fails_pass_now(self) -> bool:
        return self._unroutable_fails_pass is None or self._unroutable_fails_pass()

    def _pass_graph(self, event: IncomingEvent) -> Graph:
        key = (event.source, event.event_type, self.workflow.version)
        graph = self._graphs.get(key)
        if graph is None:
            if self.workflow.node(event.source) is None:
                raise PluginError(
                    PluginErrorCode.NodeNotFound,
                    f"event '{event.event_id}' names source '{event.source}', which the "
                    f"workflow (version {self.workflow.version}) does not have",
                )
            graph = compile_workflow(pass_workflow(self.workflow, event.source, event.event_type))
            self._graphs[key] = graph
        return graph

    def _pass_event(
        self, kind: WorkflowEventType, fields: dict[str, Any], details: dict[str, Any]
    ) -> None:
        node_id = fields.get("node_id")
        if node_id is not None:
            _count(self.counters(node_id), kind, fields, self.now_iso())
        self.emit(kind, details=details, **fields)

    async def _stop_everything(self) -> None:
        tasks = [*self._sources.values(), *self._passes.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- reporting -----------------------------------------------------------------------

    def execution_data(self) -> dict[str, Any]:
        return {
            **super().execution_data(),
            "events_received": self.state.received,
            "events_processed": self.state.processed,
            "events_failed": self.state.failed,
            "events_queued": len(self.state.queue),
            "passes_running": len(self._passes),
            "checkpoints": dict(self.state.checkpoints),
        }


def _count(
    counters: NodeCounters, kind: WorkflowEventType, fields: dict[str, Any], now: str
) -> None:
    if kind is EventType.node_started:
        counters.runs += 1
        counters.running += 1
        counters.last_started_at = now
    elif kind is EventType.node_completed:
        counters.running -= 1
        counters.completed += 1
        counters.last_completed_at = now
        counters.last_result = fields.get("result")
    elif kind is EventType.node_failed:
        counters.running -= 1
        counters.failed += 1
        counters.errors += 1
        counters.last_completed_at = now
        counters.last_error = fields.get("error")
    elif kind is EventType.node_skipped:
        counters.skipped += 1
    elif kind is EventType.node_cancelled:
        counters.running -= 1
