"""Streaming executions: supervise one long-running stream activity.

The items never pass through Temporal: a stream activity (:mod:`activities.stream`) reads the
Source node in micro-batches, runs each batch through the processors and sinks in-process,
acknowledges it at the source, and checkpoints. This controller only supervises, so the
execution's history stays small however many items flow:

* it starts the activity with the current definition, the last checkpoint and the counters;
* the activity reports counters and its checkpoint every ``progress_interval`` seconds
  (signal ``stream_progress``), which the status query and the event stream show;
* pause, a new definition version and continue-as-new stop the activity gracefully (it
  finishes the batches it has read, commits them and reports where it stopped) and, except
  for pause, start it again from there: no item is lost, none is processed twice by the
  engine; resume starts it again;
* a finite source read to its end completes the execution; cancellation stops the
  activity the same graceful way and ends the execution Cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import PluginWorkflow, WorkflowNodeType
from engine.language.options import global_options
from engine.runtime.contracts import LongRunState, StreamProgress, StreamRunInput, StreamSettings
from engine.runtime.lifecycle import ContinueAsNew
from engine.runtime.long_run import EventType, LongRun, Status


class StreamRunner(Protocol):
    """Runs the stream activity until the source is exhausted (returns the final progress),
    it is cancelled (raises ``asyncio.CancelledError``) or it fails (raises PluginError)."""

    def __call__(self, call: StreamRunInput) -> Coroutine[Any, Any, StreamProgress]: ...


def stream_settings(global_configuration: dict[str, Any]) -> StreamSettings:
    """Batching settings from ``global_configuration`` (validated at registration)."""
    options = global_options(global_configuration)
    return StreamSettings(
        batch_size=options.batch_size,
        batch_max_wait=options.batch_max_wait,
        max_batches_in_flight=options.max_batches_in_flight,
        progress_interval=options.progress_interval,
    )


class StreamRun(LongRun):
    """Runs one Streaming execution (or one Temporal run of it)."""

    def __init__(
        self,
        workflow: PluginWorkflow,
        *,
        execution_id: str,
        state: LongRunState | None,
        run_stream: StreamRunner,
        clock: Callable[[], datetime],
        should_continue_as_new: Callable[[], bool],
    ) -> None:
        super().__init__(
            workflow,
            execution_id=execution_id,
            state=state,
            clock=clock,
            should_continue_as_new=should_continue_as_new,
        )
        self._run_stream = run_stream
        self._restart = False

    @property
    def source_node(self) -> str:
        for node in self.workflow.nodes:
            if node.node_type is WorkflowNodeType.Source:
                return node.node_id
        raise PluginError(  # validation requires a source in Streaming mode
            PluginErrorCode.ExecutionModeNotSupported,
            f"workflow '{self.workflow.workflow_id}' has no Source node to stream from",
        )

    def progress(self, report: StreamProgress) -> None:
        """Counters and checkpoint from the stream activity. Whether a node runs, and since
        when, is the run's own record: the activity of a fresh run was handed no counters, so
        its reports carry none of it."""
        for node_id, reported in report.counters.items():
            own = self.state.counters.get(node_id)
            if own is not None:
                reported = reported.model_copy(
                    update={
                        "running": own.running,
                        "last_started_at": own.last_started_at or reported.last_started_at,
                    }
                )
            self.state.counters[node_id] = reported
        self.state.checkpoints[self.source_node] = report.checkpoint
        totals = {node: c.items_out for node, c in report.counters.items()}
        self.emit(EventType.execution_progress_updated, progress=0.0, details={"items_out": totals})
        self._wake.set()

    def _definition_changed(self) -> None:
        self._restart = True

    async def run(self) -> Status:
        """Run until the source is exhausted, the activity fails, or cancellation.

        Raises:
            ContinueAsNew: stopped gracefully and ready to continue as new.
        """
        if self._fresh:
            self.emit(EventType.workflow_started)
        task: asyncio.Task[StreamProgress] | None = None
        try:
            while True:
                if self._should_continue_as_new():
                    raise ContinueAsNew(self.carried_state())
                if self._is_paused():
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                self._restart = False
                task = asyncio.create_task(self._run_stream(self._call()))
                task.add_done_callback(lambda _: self._wake.set())
                self._mark_running(1)
                while not (
                    task.done()
                    or self._restart
                    or self._is_paused()
                    or self._should_continue_as_new()
                ):
                    await self._wake.wait()
                    self._wake.clear()
                if not task.done():
                    await self._stop(task)
                    task = None
                    continue
                self._mark_running(0)
                try:
                    final = task.result()
                except PluginError as exc:
                    self.finish(Status.Failed, f"stream failed: {exc.message}")
                    return Status.Failed
                task = None
                self.progress(final)
                self.finish(Status.Completed)
                return Status.Completed
        except asyncio.CancelledError:
            if task is not None and not task.done():
                await self._stop(task)
            self.finish(Status.Cancelled)
            return Status.Cancelled

    async def _stop(self, task: asyncio.Task[StreamProgress]) -> None:
        # The activity drains what it has read, commits and reports its checkpoint
        # (stream_progress) before it acknowledges the cancellation.
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._mark_running(0)

    def _call(self) -> StreamRunInput:
        return StreamRunInput(
            execution_id=self.execution_id,
            workflow=self.workflow,
            source_node=self.source_node,
            checkpoint=self.state.checkpoints.get(self.source_node),
            counters=self.state.counters,
            settings=stream_settings(self.workflow.global_configuration),
        )

    def _mark_running(self, running: int) -> None:
        now = self.now_iso()
        for node in self.workflow.nodes:
            counters = self.counters(node.node_id)
            if running and not counters.running:
                counters.last_started_at = now
                self.emit(EventType.node_started, node_id=node.node_id)
            counters.running = running

    def execution_data(self) -> dict[str, Any]:
        source = self.source_node
        counters = self.counters(source)
        return {
            **super().execution_data(),
            "checkpoint": self.state.checkpoints.get(source),
            "items_read": counters.items_out,
        }
