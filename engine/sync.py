"""A synchronous facade for scripts and REPLs, with the same method names as the async API.

The spec's Python example runs with ``qtforge.orchestration.`` replaced by ``engine.sync.``::

    import engine.sync

    orchestrator = engine.sync.AdvancedPluginOrchestrator()
    workflow = engine.sync.PluginWorkflow()
    workflow.workflow_id = "python_pipeline"
    ...
    orchestrator.register_workflow(workflow)
    execution_id = orchestrator.execute_workflow("python_pipeline")

The facade runs an asyncio loop in a background thread and forwards each call to
:class:`engine.orchestrator.AdvancedPluginOrchestrator`. With no address given (argument or
``TEMPORAL_ADDRESS``) it uses the local server, starting the embedded dev server if none
answers, and it hosts a worker in its thread when no worker polls the task queue, so a REPL
needs nothing else running. Call :meth:`close` (or use ``with``) to stop that worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from engine import orchestrator as async_api
from engine.errors import PluginError, PluginErrorCode
from engine.models import (
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
from engine.validation import validate_workflow
from plugins import PluginRegistry

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


class AdvancedPluginOrchestrator:
    """Blocking twin of :class:`engine.orchestrator.AdvancedPluginOrchestrator`.

    Args:
        target: Temporal address; default ``TEMPORAL_ADDRESS``, else the local (embedded)
            server.
        namespace: Temporal namespace.
        task_queue: Task queue of executions and of the hosted worker.
        start_worker: Host a worker in this process: True, False, or None to host one only
            when no worker polls the task queue.
        plugins: Plugins of the hosted worker (default: the built-ins).
        data_dir: Where the embedded server keeps its SQLite file.
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
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="orchestrator-loop", daemon=True
        )
        self._thread.start()
        self._worker_stack: contextlib.AsyncExitStack | None = None
        try:
            self._api: async_api.AdvancedPluginOrchestrator = self._call(
                self._open(target, namespace, task_queue, start_worker, plugins, data_dir)
            )
        except BaseException:
            self._stop_loop()
            raise

    async def _open(
        self,
        target: str | None,
        namespace: str | None,
        task_queue: str | None,
        start_worker: bool | None,
        plugins: PluginRegistry | None,
        data_dir: str | Path | None,
    ) -> async_api.AdvancedPluginOrchestrator:
        from engine import embedded

        address, _ui = await embedded.ensure_server(
            target, Path(data_dir) if data_dir else embedded.default_data_dir()
        )
        api = await async_api.AdvancedPluginOrchestrator.connect(address, namespace, task_queue)
        if start_worker is not False:
            self._worker_stack = contextlib.AsyncExitStack()
            await self._worker_stack.enter_async_context(
                embedded.embedded_worker(
                    api.client, api.task_queue, plugins=plugins, force=start_worker is True
                )
            )
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
        """Stop the hosted worker (if any) and the background loop."""
        if self._loop.is_closed():
            return
        if self._worker_stack is not None:
            self._call(self._worker_stack.aclose())
            self._worker_stack = None
        self._stop_loop()

    def __enter__(self) -> AdvancedPluginOrchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def task_queue(self) -> str:
        return self._api.task_queue

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
        return self._call(self._api.execute_workflow(workflow_id, input_data))

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
        return self._call(self._api.retry_execution(execution_id))

    def skip_node(
        self, execution_id: str, node_id: str, output: dict[str, Any] | None = None
    ) -> None:
        self._call(self._api.skip_node(execution_id, node_id, output))

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


async def _next(stream: AsyncGenerator[WorkflowEvent, None]) -> WorkflowEvent:
    return await anext(stream)
