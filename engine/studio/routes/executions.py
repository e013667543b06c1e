"""Executions: start, list, read, follow live (Server-Sent Events), and control them (pause,
resume, cancel, retry; skip or approve a node). Execution ids contain ``/``: the routes with a
suffix come before the plain ``GET /executions/{id}``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from engine.base.errors import PluginError, PluginErrorCode
from engine.client import executions
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.hosting.embedded import temporal_ui_link
from engine.language.models import WorkflowEvent
from engine.studio.api import RequestBody, error_body

Code = PluginErrorCode

_LIST_LIMIT = 50
_KEEPALIVE_SECONDS = 15.0
_TRANSIENT = {Code.WorkerUnavailable, Code.ServerUnavailable, Code.Timeout}
_STREAM_RETRIES = 5


class StartExecution(RequestBody):
    """``POST /workflows/{id}/executions``."""

    input_data: dict[str, Any] | None = None


class SkipNodeBody(RequestBody):
    """``POST /executions/{id}/nodes/{node}/skip``: the output the node completes with."""

    output: dict[str, Any] | None = None


class ApproveNodeBody(RequestBody):
    """``POST /executions/{id}/nodes/{node}/approve``."""

    approved: bool = True
    by: str = Field("", max_length=200)
    comment: str = Field("", max_length=2000)
    data: dict[str, Any] | None = None


class Empty(RequestBody):
    """The body of a control request: an empty JSON object."""


def router(orch: AdvancedPluginOrchestrator, *, ui_url: str | None) -> APIRouter:
    """The routes of executions; ``ui_url`` (Temporal UI's base URL, if known) gives their
    links to the Temporal UI."""
    routes = APIRouter()

    def ui_link(execution_id: str) -> str | None:
        return temporal_ui_link(ui_url, orch.client.namespace, execution_id) if ui_url else None

    @routes.post("/workflows/{workflow_id}/executions", status_code=201)
    async def start_execution(
        workflow_id: str, body: Annotated[StartExecution | None, Body()] = None
    ) -> dict[str, Any]:
        """Start an execution of the definition's current version."""
        execution_id = await orch.execute_workflow(
            workflow_id, body.input_data if body is not None else None
        )
        return {"execution_id": execution_id, "temporal_ui": ui_link(execution_id)}

    @routes.get("/executions")
    async def list_executions(
        workflow_id: str | None = None,
        status: Annotated[
            Literal[
                "pending",
                "queued",
                "running",
                "paused",
                "completed",
                "failed",
                "cancelled",
                "terminated",
            ]
            | None,
            Query(),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = _LIST_LIMIT,
    ) -> list[dict[str, Any]]:
        """Active executions and recent ended ones of this task queue, newest first."""
        rows = await orch.list_executions(workflow_id or None, status, limit)
        return [row.model_dump() for row in rows]

    # Routes with a suffix come before the plain one: execution ids contain '/'.

    @routes.get("/executions/{execution_id:path}/events", response_model=None)
    async def execution_events(
        execution_id: str,
        after: Annotated[int, Query(ge=0)] = 0,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """The execution's events as Server-Sent Events (``id`` = sequence, ``data`` = the
        event's JSON), from ``after`` (or the ``Last-Event-ID`` of a reconnect); the stream
        sends ``event: end`` after the terminal event and closes (``event: stream-error``
        with an error body if the stream cannot go on)."""
        handle = orch.client.get_workflow_handle(execution_id)
        await executions.describe(handle, execution_id)  # 404 before the stream starts
        if last_event_id and last_event_id.isdigit():
            after = max(after, int(last_event_id))
        return StreamingResponse(
            _sse(orch, execution_id, after),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    @routes.post("/executions/{execution_id:path}/nodes/{node_id}/skip")
    async def skip_node(
        execution_id: str, node_id: str, body: Annotated[SkipNodeBody | None, Body()] = None
    ) -> dict[str, Any]:
        """Complete a node with the given output instead of running it."""
        await orch.skip_node(execution_id, node_id, body.output if body else None)
        return {"ok": True}

    @routes.post("/executions/{execution_id:path}/nodes/{node_id}/approve")
    async def approve_node(
        execution_id: str, node_id: str, body: Annotated[ApproveNodeBody | None, Body()] = None
    ) -> dict[str, Any]:
        """Decide for a node waiting in ``approval`` (``approved: false`` rejects)."""
        decision = body or ApproveNodeBody()
        await orch.approve_node(
            execution_id,
            node_id,
            decision.approved,
            by=decision.by,
            comment=decision.comment,
            data=decision.data,
        )
        return {"ok": True}

    def control(action: str, description: str) -> None:
        @routes.post(
            f"/executions/{{execution_id:path}}/{action}",
            name=f"{action}_execution",
            description=description,
        )
        async def steer(
            execution_id: str, body: Annotated[Empty | None, Body()] = None
        ) -> dict[str, Any]:
            method = getattr(orch, f"{action}_execution")
            result = await method(execution_id)
            return {"ok": True, "execution_id": result or execution_id}

    control("pause", "Start no new node until resumed; running nodes finish.")
    control("resume", "Continue a paused execution.")
    control("cancel", "Cancel: running nodes are cancelled, the execution ends Cancelled.")
    control("retry", "Run a failed or cancelled batch execution again from where it stopped.")

    @routes.get("/executions/{execution_id:path}")
    async def get_execution(execution_id: str, definition: bool = True) -> dict[str, Any]:
        """The execution's context and (unless ``definition=false``) the definition snapshot
        it runs."""
        context = await orch.get_execution_status(execution_id)
        body: dict[str, Any] = {
            "context": context.to_json(),
            "temporal_ui": ui_link(execution_id),
        }
        if definition:
            params = await executions.start_input(orch.client.get_workflow_handle(execution_id))
            body["definition"] = params.workflow.to_json()
        return body

    return routes


async def _sse(
    orch: AdvancedPluginOrchestrator, execution_id: str, after: int
) -> AsyncIterator[str]:
    """Server-Sent Events of the execution's event stream; keep-alive comments while quiet.

    A worker that does not answer in time (or a server hiccup) does not end the stream: it
    goes on from the last event sent, after a short pause, a few times in a row at most."""
    queue: asyncio.Queue[WorkflowEvent | PluginError | None] = asyncio.Queue(maxsize=256)

    async def pump() -> None:
        last, failures = after, 0
        while True:
            try:
                async with contextlib.aclosing(orch.events(execution_id, after=last)) as stream:
                    async for event in stream:
                        last, failures = event.sequence, 0
                        await queue.put(event)
            except PluginError as exc:
                if exc.code in _TRANSIENT and failures < _STREAM_RETRIES:
                    failures += 1
                    await asyncio.sleep(0.5 * failures)
                    continue
                await queue.put(exc)
            except Exception as exc:  # reported to the client, not lost in a task
                await queue.put(PluginError(Code.ExecutionFailed, f"event stream failed: {exc}"))
            else:
                await queue.put(None)
            return

    task = asyncio.create_task(pump())
    try:
        yield "retry: 2000\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), _KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is None:
                yield "event: end\ndata: {}\n\n"
                return
            if isinstance(item, PluginError):
                yield f"event: stream-error\ndata: {json.dumps(error_body(item))}\n\n"
                return
            yield f"id: {item.sequence}\ndata: {item.model_dump_json()}\n\n"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
