"""A synchronous facade for scripts and REPLs, with the same method names as the async API.

The spec's Python example runs with ``import qtforge`` replaced by ``import engine.sync`` and
``qtforge.orchestration.`` by ``engine.sync.``::

    import engine.sync

    orchestrator = engine.sync.AdvancedPluginOrchestrator()
    workflow = engine.sync.PluginWorkflow()
    workflow.workflow_id = "python_pipeline"
    ...
    orchestrator.register_workflow(workflow)
    execution_id = orchestrator.execute_workflow("python_pipeline")

The facade runs an asyncio loop in a background thread and forwards each call to
:class:`engine.client.orchestrator.AdvancedPluginOrchestrator`. With no address given (argument or
``TEMPORAL_ADDRESS``) it uses the local server, starting the embedded dev server if none
answers, and it hosts a worker in its thread when no worker polls the task queue, so a REPL
needs nothing else running.

Ending: :meth:`~AdvancedPluginOrchestrator.close` (or leaving a ``with`` block, or the
interpreter exiting with the facade still open) first lets the executions this facade
started finish, when it hosts the worker that runs them: it waits for them up to
``drain_timeout`` seconds (``ORCHESTRATOR_DRAIN_TIMEOUT``, default 30; EventDriven
executions, which run until cancelled, are not waited for). Whatever is still running then
is named on stderr with the ``orchestrator worker`` command that continues it. Then it stops
the worker and shuts the client's SDK runtime down (:mod:`engine.hosting.lifetime`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shlex
import sys
import threading
from collections.abc import AsyncGenerator, Coroutine, Iterator
from concurrent.futures import Future
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from temporalio.client import WorkflowExecutionStatus as TemporalStatus
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from engine.base.data_dir import default_data_dir
from engine.base.errors import PluginError, PluginErrorCode
from engine.client import orchestrator as async_api
from engine.client.hook_store import HookInfo
from engine.client.schedules import OverlapName, ScheduleDetails, ScheduleSummary
from engine.hosting import lifetime
from engine.language.models import (
    ConnectionType,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowEvent,
    WorkflowEventType,
    WorkflowExecutionContext,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.language.validation import validate_workflow
from plugins import PluginRegistry

if TYPE_CHECKING:  # the worker's modules load only when a worker is hosted
    from engine.hosting.worker import EngineWorker

__all__ = [
    "AdvancedPluginOrchestrator",
    "ConnectionType",
    "PluginError",
    "PluginErrorCode",
    "PluginWorkflow",
    "WorkflowConnection",
    "WorkflowEvent",
    "WorkflowEventType",
    "WorkflowExecutionContext",
    "WorkflowExecutionMode",
    "WorkflowExecutionStatus",
    "WorkflowNode",
    "WorkflowNodeType",
    "validate_workflow",
]

T = TypeVar("T")

ENV_DRAIN_TIMEOUT = "ORCHESTRATOR_DRAIN_TIMEOUT"
DEFAULT_DRAIN_TIMEOUT = 30.0
# A drain still waiting after this many seconds says what it waits for.
_DRAIN_NOTICE_AFTER = 2.0
# EventDriven executions run until cancelled: a drain does not wait for them.
_EVENT_DRIVEN = WorkflowExecutionMode.EventDriven.value


def default_drain_timeout() -> float:
    """``ORCHESTRATOR_DRAIN_TIMEOUT`` (seconds, 0 or more), else 30.

    Raises:
        PluginError: ``InvalidConfiguration`` for a value that is not such a number.
    """
    value = os.environ.get(ENV_DRAIN_TIMEOUT, "").strip()
    if not value:
        return DEFAULT_DRAIN_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    return _checked_drain_timeout(seconds, ENV_DRAIN_TIMEOUT, value)


def _checked_drain_timeout(seconds: float, name: str, given: object) -> float:
    if not 0 <= seconds < float("inf"):
        raise PluginError(
            PluginErrorCode.InvalidConfiguration,
            f"{name} must be a number of seconds (0 or more), got {given!r}",
        )
    return seconds


class AdvancedPluginOrchestrator:
    """Blocking twin of :class:`engine.client.orchestrator.AdvancedPluginOrchestrator`.

    Args:
        target: Temporal address; default ``TEMPORAL_ADDRESS``, else the local (embedded)
            server.
        namespace: Temporal namespace.
        task_queue: Task queue of executions and of the hosted worker.
        start_worker: Host a worker in this process: True, False, or None to host one only
            when no worker polls the task queue.
        plugins: Plugins of the hosted worker (default: the built-ins).
        data_dir: Where the embedded server keeps its SQLite file.
        drain_timeout: Seconds :meth:`close` waits for the executions started here to
            finish before it stops a hosted worker (default ``ORCHESTRATOR_DRAIN_TIMEOUT``,
            else 30).
    """

    def __init__(
        self,
        target: str | None = None,
        namespace: str | None = None,
        task_queue: str | None = None,
        *,
        start_worker: bool | None = None,
        plugins: PluginRegistry | None = None,
        data_dir: str | Path | None = None,
        drain_timeout: float | None = None,
    ) -> None:
        self._drain_timeout = (
            default_drain_timeout()
            if drain_timeout is None
            else _checked_drain_timeout(drain_timeout, "drain_timeout", drain_timeout)
        )
        self._started: dict[str, None] = {}  # execution ids started here, in order
        self._address = ""
        self._hosted: EngineWorker | None = None
        self._worker_stack: contextlib.AsyncExitStack | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="orchestrator-loop", daemon=True
        )
        self._thread.start()
        try:
            self._api: async_api.AdvancedPluginOrchestrator = self._call(
                self._open(target, namespace, task_queue, start_worker, plugins, data_dir)
            )
        except BaseException:
            self._stop_loop()
            raise
        # A script may end without close(): finish (or report) its executions at exit.
        self._exit_token = lifetime.close_at_exit(self.close)

    async def _open(
        self,
        target: str | None,
        namespace: str | None,
        task_queue: str | None,
        start_worker: bool | None,
        plugins: PluginRegistry | None,
        data_dir: str | Path | None,
    ) -> async_api.AdvancedPluginOrchestrator:
        from engine.hosting import embedded  # loads the worker: only when a facade opens

        self._address, _ui = await embedded.ensure_server(
            target, Path(data_dir) if data_dir else default_data_dir()
        )
        api = await async_api.AdvancedPluginOrchestrator.connect(
            self._address, namespace, task_queue
        )
        if start_worker is False:
            return api
        self._worker_stack = contextlib.AsyncExitStack()
        try:
            self._hosted = await self._worker_stack.enter_async_context(
                embedded.embedded_worker(
                    api.client, api.task_queue, plugins=plugins, force=start_worker is True
                )
            )
        except BaseException:
            self._worker_stack = None
            await api.close()
            raise
        return api

    # -- plumbing --------------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def close(self) -> None:
        """Let the executions started here finish (see the module docstring), then stop the
        hosted worker (if any), the client and the background loop. Closing twice is
        harmless; the interpreter closes a facade left open when it exits."""
        if self._loop.is_closed():
            return
        lifetime.cancel_close_at_exit(self._exit_token)
        try:
            if self._hosted is not None:
                self._drain()
            if self._worker_stack is not None:
                self._call(self._worker_stack.aclose())
        finally:
            self._hosted = self._worker_stack = None
            try:
                self._call(self._api.close())
            finally:
                self._stop_loop()

    def __enter__(self) -> AdvancedPluginOrchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def task_queue(self) -> str:
        return self._api.task_queue

    # -- draining the hosted worker --------------------------------------------------------

    def _drain(self) -> None:
        """Wait (bounded) for the executions started here, then report those still running."""
        running = self._call(self._running_started())
        waiting = {
            execution_id: mode for execution_id, mode in running.items() if mode != _EVENT_DRIVEN
        }
        if waiting and self._drain_timeout > 0:
            wait = asyncio.run_coroutine_threadsafe(
                self._wait_until_ended(waiting, self._drain_timeout), self._loop
            )
            try:
                try:
                    wait.result(_DRAIN_NOTICE_AFTER)
                except concurrent.futures.TimeoutError:
                    self._say_waiting(waiting)
                    wait.result()
            except KeyboardInterrupt:
                wait.cancel()  # Ctrl-C: stop waiting, report what is left
        remaining = {
            execution_id: mode
            for execution_id, mode in running.items()
            if execution_id in waiting or mode == _EVENT_DRIVEN
        }
        if remaining:
            self._report_unfinished(remaining)

    async def _running_started(self) -> dict[str, str]:
        """The executions started here that are still running, with their mode."""
        running: dict[str, str] = {}
        for execution_id in self._started:
            handle = self._api.client.get_workflow_handle(execution_id)
            try:
                description = await handle.describe()
            except RPCError as exc:
                if exc.status is not RPCStatusCode.NOT_FOUND:
                    running[execution_id] = ""  # cannot tell: report it
                continue  # gone (e.g. deleted): nothing to wait for
            if description.status is TemporalStatus.RUNNING:
                memo = await description.memo()
                running[execution_id] = str(memo.get("execution_mode", ""))
        return running

    async def _wait_until_ended(self, waiting: dict[str, str], timeout: float) -> None:
        """Remove each execution from ``waiting`` when it ends, for at most ``timeout`` s."""

        async def until_ended(execution_id: str) -> None:
            handle = self._api.client.get_workflow_handle(execution_id)
            try:
                await handle.result()
            except WorkflowFailureError:
                pass  # failed or cancelled: ended all the same
            except RPCError:
                return  # cannot tell: it stays on the list
            waiting.pop(execution_id, None)

        tasks = [asyncio.create_task(until_ended(execution_id)) for execution_id in waiting]
        try:
            await asyncio.wait(tasks, timeout=timeout)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _say_waiting(self, waiting: dict[str, str]) -> None:
        listed = ", ".join(list(waiting))  # a copy: the loop thread removes ended ones
        print(
            f"engine.sync: waiting up to {self._drain_timeout:g}s for {_executions(waiting)} "
            f"started here to finish before this process's worker stops (Ctrl-C stops "
            f"waiting): {listed}",
            file=sys.stderr,
            flush=True,
        )

    def _report_unfinished(self, remaining: dict[str, str]) -> None:
        command = shlex.join(
            [
                "orchestrator",
                "worker",
                "--address",
                self._address,
                "--namespace",
                self._api.client.namespace,
                "--task-queue",
                self._api.task_queue,
            ]
        )
        lines = [
            f"engine.sync: {_executions(remaining)} started here did not finish, and this "
            "process's worker stops now:"
        ]
        for execution_id, mode in remaining.items():
            until = " (runs until cancelled)" if mode == _EVENT_DRIVEN else ""
            lines.append(f"  {execution_id} ({mode or 'unknown mode'}){until}")
        lines.append(
            f"They continue when a worker polls their task queue; start one with:\n  {command}"
        )
        print("\n".join(lines), file=sys.stderr, flush=True)

    # -- the spec's methods ----------------------------------------------------------------

    def register_workflow(self, workflow: PluginWorkflow) -> None:
        self._call(self._api.register_workflow(workflow))

    def unregister_workflow(self, workflow_id: str) -> None:
        self._call(self._api.unregister_workflow(workflow_id))

    def get_workflow(self, workflow_id: str) -> PluginWorkflow:
        return self._call(self._api.get_workflow(workflow_id))

    def get_registered_workflows(self) -> list[str]:
        return self._call(self._api.get_registered_workflows())

    def update_workflow(self, workflow: PluginWorkflow) -> PluginWorkflow:
        return self._call(self._api.update_workflow(workflow))

    def add_node_to_workflow(self, workflow_id: str, node: WorkflowNode) -> None:
        self._call(self._api.add_node_to_workflow(workflow_id, node))

    def remove_node_from_workflow(self, workflow_id: str, node_id: str) -> None:
        self._call(self._api.remove_node_from_workflow(workflow_id, node_id))

    def add_connection_to_workflow(self, workflow_id: str, connection: WorkflowConnection) -> None:
        self._call(self._api.add_connection_to_workflow(workflow_id, connection))

    def execute_workflow(self, workflow_id: str, input_data: dict[str, Any] | None = None) -> str:
        return self._started_here(self._call(self._api.execute_workflow(workflow_id, input_data)))

    def send_event(
        self,
        execution_id: str,
        event_type: str,
        payload: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        source: str | None = None,
    ) -> str:
        return self._call(
            self._api.send_event(
                execution_id, event_type, payload, event_id=event_id, source=source
            )
        )

    def retry_execution(self, execution_id: str) -> str:
        return self._started_here(self._call(self._api.retry_execution(execution_id)))

    def create_hook(
        self,
        hook_id: str,
        workflow_id: str,
        action: Literal["start", "event"] = "start",
        execution_id: str | None = None,
        **options: Any,
    ) -> str:
        return self._call(
            self._api.create_hook(hook_id, workflow_id, action, execution_id, **options)
        )

    def list_hooks(self) -> list[HookInfo]:
        return self._call(self._api.list_hooks())

    def delete_hook(self, hook_id: str) -> None:
        self._call(self._api.delete_hook(hook_id))

    def rotate_hook_secret(self, hook_id: str, grace_seconds: float = 0) -> str:
        return self._call(self._api.rotate_hook_secret(hook_id, grace_seconds))

    def skip_node(
        self, execution_id: str, node_id: str, output: dict[str, Any] | None = None
    ) -> None:
        self._call(self._api.skip_node(execution_id, node_id, output))
        self._started_here(execution_id)  # a failed execution is started again with it

    def approve_node(
        self,
        execution_id: str,
        node_id: str,
        approved: bool = True,
        *,
        by: str = "",
        comment: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        self._call(
            self._api.approve_node(
                execution_id, node_id, approved, by=by, comment=comment, data=data
            )
        )

    def cancel_execution(self, execution_id: str) -> None:
        self._call(self._api.cancel_execution(execution_id))

    def pause_execution(self, execution_id: str) -> None:
        self._call(self._api.pause_execution(execution_id))

    def resume_execution(self, execution_id: str) -> None:
        self._call(self._api.resume_execution(execution_id))

    def get_execution_status(self, execution_id: str) -> WorkflowExecutionContext:
        return self._call(self._api.get_execution_status(execution_id))

    def get_active_executions(self) -> list[str]:
        return self._call(self._api.get_active_executions())

    def get_node_status(self, execution_id: str, node_id: str) -> dict[str, Any]:
        return self._call(self._api.get_node_status(execution_id, node_id))

    def wait_for_completion(
        self, execution_id: str, timeout: float | None = None
    ) -> WorkflowExecutionContext:
        return self._call(self._api.wait_for_completion(execution_id, timeout))

    # Schedules: see AdvancedPluginOrchestrator.create_schedule and engine.client.schedules.

    def create_schedule(
        self,
        workflow_id: str,
        *,
        cron: str | None = None,
        interval: float | timedelta | None = None,
        input_data: dict[str, Any] | None = None,
        overlap: OverlapName = "skip",
        catchup_window: float | timedelta | None = None,
        jitter: float | timedelta | None = None,
        time_zone: str | None = None,
        schedule_id: str | None = None,
        paused: bool = False,
        note: str | None = None,
    ) -> str:
        """Run a definition on a cron expression or an interval; return the schedule id.
        Its runs need a worker polling the task queue when they are due (this facade's
        worker stops when it closes)."""
        return self._call(
            self._api.create_schedule(
                workflow_id,
                cron=cron,
                interval=interval,
                input_data=input_data,
                overlap=overlap,
                catchup_window=catchup_window,
                jitter=jitter,
                time_zone=time_zone,
                schedule_id=schedule_id,
                paused=paused,
                note=note,
            )
        )

    def list_schedules(self, workflow_id: str | None = None) -> list[ScheduleSummary]:
        return self._call(self._api.list_schedules(workflow_id))

    def describe_schedule(self, schedule_id: str) -> ScheduleDetails:
        return self._call(self._api.describe_schedule(schedule_id))

    def pause_schedule(self, schedule_id: str, note: str | None = None) -> None:
        self._call(self._api.pause_schedule(schedule_id, note))

    def resume_schedule(self, schedule_id: str, note: str | None = None) -> None:
        self._call(self._api.resume_schedule(schedule_id, note))

    def trigger_schedule(self, schedule_id: str, overlap: OverlapName | None = None) -> None:
        self._call(self._api.trigger_schedule(schedule_id, overlap))

    def backfill_schedule(
        self,
        schedule_id: str,
        start: datetime,
        end: datetime,
        overlap: OverlapName | None = None,
    ) -> None:
        self._call(self._api.backfill_schedule(schedule_id, start, end, overlap))

    def delete_schedule(self, schedule_id: str) -> None:
        self._call(self._api.delete_schedule(schedule_id))

    def events(self, execution_id: str, *, after: int = 0) -> Iterator[WorkflowEvent]:
        """The execution's events, blocking between them, ending after the terminal one."""
        stream = self._api.events(execution_id, after=after)
        try:
            while True:
                try:
                    yield self._call(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            if not self._loop.is_closed():
                self._call(stream.aclose())

    def _started_here(self, execution_id: str) -> str:
        self._started[execution_id] = None
        return execution_id


def _executions(ids: dict[str, str]) -> str:
    return "1 execution" if len(ids) == 1 else f"{len(ids)} executions"


async def _next(stream: AsyncGenerator[WorkflowEvent, None]) -> WorkflowEvent:
    return await anext(stream)
