"""The studio's HTTP API: a thin JSON layer over :class:`AdvancedPluginOrchestrator`.

Nothing is stored here: definitions come from the registry, executions and their events from
Temporal, the catalog from the workers' published catalog. Every engine error becomes a JSON
body ``{"code", "message", "details"}`` with a status from its code (see :data:`STATUS_OF`).

Routes, all under ``/api`` (execution ids contain ``/`` and are taken as they are):

* ``GET /info``: task queue, namespace, Temporal UI, enums;
* ``GET /workflows``: definitions with name, mode, version and sizes;
* ``GET|PUT|DELETE /workflows/{id}``: read, register or update, unregister;
* ``POST /validate``: validate without saving, ``ok`` or the problems;
* ``GET /catalog``: plugins and engine-run nodes with their configuration schemas;
* ``POST /workflows/{id}/executions``: start (``{"input_data": {...}}``);
* ``GET /executions?workflow_id=&status=&limit=``: active and recent executions;
* ``GET /executions/{id}``: context, definition snapshot, Temporal UI link;
* ``GET /executions/{id}/events``: Server-Sent Events until the terminal event;
* ``POST /executions/{id}/pause|resume|cancel|retry``: control;
* ``POST /executions/{id}/nodes/{node}/skip|approve``: per-node control.

The built front end is served from ``static/`` at ``/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, FastAPI, Header, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from engine.base.errors import PluginError, PluginErrorCode
from engine.client import executions
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.hosting.embedded import temporal_ui_link
from engine.language.engine_nodes import ENGINE_NODE_MODELS
from engine.language.models import (
    ConnectionType,
    PluginWorkflow,
    WorkflowEvent,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNodeType,
)
from engine.runtime.contracts import PluginInfo
from engine.studio.guard import Guard, check_token
from engine.temporal.catalog import validate_with_catalog

Code = PluginErrorCode
T = TypeVar("T")
STATIC_DIR = Path(__file__).parent / "static"

_NOT_FOUND = {Code.WorkflowNotFound, Code.ExecutionNotFound, Code.NodeNotFound}
_INVALID = {
    Code.InvalidWorkflowStructure,
    Code.CircularDependency,
    Code.InvalidConnection,
    Code.ExecutionModeNotSupported,
    Code.PluginNotFound,
    Code.InvalidConfiguration,
    Code.InvalidInput,
    Code.InvalidOutput,
}
STATUS_OF: dict[PluginErrorCode, int] = {
    **dict.fromkeys(_NOT_FOUND, 404),
    **dict.fromkeys(_INVALID, 422),
    Code.InvalidState: 409,
    Code.WorkflowAlreadyExists: 409,
    Code.WorkerUnavailable: 503,
    Code.ServerUnavailable: 503,
    Code.Timeout: 504,
}
"""HTTP status of each error code (others: 500). A code raised by validation (its details
carry ``problems``) is always 422, ``NodeNotFound`` included."""

# Temporal's status of an execution's latest run, as the engine names it.
_LIST_LIMIT = 50
_KEEPALIVE_SECONDS = 15.0
_TRANSIENT = {Code.WorkerUnavailable, Code.ServerUnavailable, Code.Timeout}
_STREAM_RETRIES = 5
_ENGINE_NODE_TYPES = {
    "aggregate": WorkflowNodeType.Aggregator,
    "split": WorkflowNodeType.Splitter,
    "wait": WorkflowNodeType.Custom,
    "approval": WorkflowNodeType.Custom,
    "subworkflow": WorkflowNodeType.Custom,
}


# -- request bodies ------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartExecution(_Body):
    """``POST /workflows/{id}/executions``."""

    input_data: dict[str, Any] | None = None


class SkipNodeBody(_Body):
    """``POST /executions/{id}/nodes/{node}/skip``: the output the node completes with."""

    output: dict[str, Any] | None = None


class ApproveNodeBody(_Body):
    """``POST /executions/{id}/nodes/{node}/approve``."""

    approved: bool = True
    by: str = Field("", max_length=200)
    comment: str = Field("", max_length=2000)
    data: dict[str, Any] | None = None


class Empty(_Body):
    """The body of a control request: an empty JSON object."""


# -- the app -------------------------------------------------------------------------------


def create_app(
    orchestrator: AdvancedPluginOrchestrator,
    *,
    ui_url: str | None = None,
    token: str | None = None,
    allowed_hosts: Iterable[str] | None = None,
    static_dir: Path | None = None,
) -> FastAPI:
    """The studio as an ASGI app (a :class:`fastapi.FastAPI` wrapped in the request guard).

    Args:
        orchestrator: Where definitions and executions live.
        ui_url: Temporal UI's base URL, for links to executions (none when unknown).
        token: When set, every ``/api`` request must carry ``Authorization: Bearer <token>``
            (the event stream also accepts ``?token=``); at least ``MIN_TOKEN_LENGTH`` (16)
            printable ASCII characters without spaces.
        allowed_hosts: Host names the ``Host`` header may name (default: any); :func:`serve`
            sets the loopback names when it binds a loopback address.
        static_dir: The built front end (default: the packaged ``static/``).

    Raises:
        PluginError: ``InvalidConfiguration`` for a token that is too short or holds
            spaces or non-ASCII characters.
    """
    if token is not None:
        check_token(token)
    api = _api(orchestrator, ui_url=ui_url, auth=token is not None)
    app = FastAPI(
        title="plugin-orchestrator studio",
        summary="Design graph workflows and watch their durable runs live",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.include_router(api, prefix="/api")
    app.add_exception_handler(PluginError, _plugin_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_error_response)  # type: ignore[arg-type]
    _mount_front_end(app, static_dir or STATIC_DIR)
    app.add_middleware(Guard, token=token, allowed_hosts=allowed_hosts)
    return app


def _mount_front_end(app: FastAPI, static: Path) -> None:
    index = static / "index.html"
    if (static / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=static / "assets"), name="assets")

    @app.get("/", include_in_schema=False, response_model=None)
    async def front_end() -> Response:
        if index.is_file():
            return FileResponse(index, headers={"cache-control": "no-cache"})
        return HTMLResponse(
            "<!doctype html><title>studio</title><p>The studio's front end is not built: "
            "run <code>npm install &amp;&amp; npm run build</code> in <code>studio/</code>. "
            'The API is at <a href="/api/docs">/api/docs</a>.</p>',
            status_code=503,
        )

    if (static / "favicon.svg").is_file():

        @app.get("/favicon.svg", include_in_schema=False)
        async def favicon() -> FileResponse:
            return FileResponse(static / "favicon.svg")


def error_body(exc: PluginError) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {
        "code": exc.code.value,
        "message": exc.message,
        "details": jsonable_encoder(exc.details),
    }


def status_of(exc: PluginError) -> int:
    """The HTTP status for an engine error (see :data:`STATUS_OF`)."""
    if "problems" in exc.details:
        return 422
    return STATUS_OF.get(exc.code, 500)


async def _plugin_error_response(request: Request, exc: PluginError) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=status_of(exc))


async def _request_error_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
        for e in list(exc.errors())[:20]
    ]
    text = "; ".join(f"{'.'.join(e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors[:5])
    body = {
        "code": Code.InvalidInput.value,
        "message": f"invalid request: {text}",
        "details": {"errors": errors},
    }
    return JSONResponse(body, status_code=422)


def _api(orch: AdvancedPluginOrchestrator, *, ui_url: str | None, auth: bool) -> APIRouter:
    router = APIRouter()

    def ui_link(execution_id: str) -> str | None:
        return temporal_ui_link(ui_url, orch.client.namespace, execution_id) if ui_url else None

    # -- server --------------------------------------------------------------------------

    @router.get("/info")
    async def info() -> dict[str, Any]:
        """What the front end needs to know about this server."""
        return {
            "task_queue": orch.task_queue,
            "namespace": orch.client.namespace,
            "temporal_ui": ui_url,
            "auth": auth,
            "execution_modes": [m.value for m in WorkflowExecutionMode],
            "node_types": [t.value for t in WorkflowNodeType],
            "connection_types": [t.value for t in ConnectionType],
            "statuses": [s.value for s in WorkflowExecutionStatus],
        }

    # -- definitions ---------------------------------------------------------------------

    @router.get("/workflows")
    async def list_workflows() -> list[dict[str, Any]]:
        """Registered definitions, by id."""
        ids = await orch.get_registered_workflows()
        limit = asyncio.Semaphore(16)

        async def summary(workflow_id: str) -> dict[str, Any] | None:
            async with limit:
                try:
                    definition = await orch.get_workflow(workflow_id)
                except PluginError as exc:
                    if exc.code is Code.WorkflowNotFound:
                        return None  # unregistered while listing
                    return {"workflow_id": workflow_id, "error": error_body(exc)}
            return {
                "workflow_id": workflow_id,
                "name": definition.name,
                "description": definition.description,
                "execution_mode": definition.execution_mode.value,
                "version": definition.version,
                "nodes": len(definition.nodes),
                "connections": len(definition.connections),
            }

        rows = await asyncio.gather(*(summary(i) for i in ids))
        return [row for row in rows if row is not None]

    @router.get("/workflows/{workflow_id}")
    async def get_workflow(workflow_id: str) -> dict[str, Any]:
        """The current definition, with its version."""
        return (await orch.get_workflow(workflow_id)).to_json()

    @router.put("/workflows/{workflow_id}")
    async def put_workflow(
        workflow_id: str,
        definition: Annotated[dict[str, Any], Body()],
        response: Response,
        expected_version: Annotated[int | None, Query(ge=0)] = None,
    ) -> dict[str, Any]:
        """Register a definition (201) or replace the registered one with a new version
        (200). With ``expected_version``, refuse (409) unless the stored version is that one
        (0: not registered), so editors do not overwrite each other's changes."""
        workflow = parse_workflow(definition)
        if workflow.workflow_id != workflow_id:
            raise PluginError(
                Code.InvalidInput,
                f"the definition's workflow_id {workflow.workflow_id!r} is not {workflow_id!r}",
            )
        await check_definition_off_loop(workflow, await catalog_of(orch))
        current: PluginWorkflow | None
        try:
            current = await orch.get_workflow(workflow_id)
        except PluginError as exc:
            if exc.code is not Code.WorkflowNotFound:
                raise
            current = None
        version = current.version if current else 0
        if expected_version is not None and version != expected_version:
            raise PluginError(
                Code.InvalidState,
                f"workflow '{workflow_id}' is already registered (version {version})"
                if expected_version == 0
                else f"workflow '{workflow_id}' is at version {version or '(not registered)'}, "
                f"not {expected_version}: it changed since it was loaded",
            )
        if current is None:
            try:
                await annotate_async(workflow, orch.register_workflow(workflow))
            except PluginError as exc:
                if exc.code is not Code.WorkflowAlreadyExists or expected_version is not None:
                    raise
            else:
                response.status_code = 201
                stored = workflow.model_copy(deep=True, update={"version": 1})
                return {"created": True, "workflow": stored.to_json()}
        stored = await annotate_async(workflow, orch.update_workflow(workflow))
        return {"created": False, "workflow": stored.to_json()}

    @router.delete("/workflows/{workflow_id}", status_code=204)
    async def delete_workflow(workflow_id: str) -> Response:
        """Unregister a definition; its running executions keep their snapshot."""
        await orch.unregister_workflow(workflow_id)
        return Response(status_code=204)

    @router.post("/validate")
    async def validate(definition: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        """Validate a definition without saving it: structure, conditions, cycles, modes,
        and every node against the plugin catalog (plugin ids, configurations, expressions
        compiled), every problem at once. Each problem names the nodes (by id) and
        connections (by index) it is about."""
        catalog = await catalog_of(orch)
        try:
            workflow = parse_workflow(definition)
            await check_definition_off_loop(workflow, catalog)
        except PluginError as exc:
            return {"ok": False, "code": exc.code.value, "problems": exc.details["problems"]}
        return {"ok": True, "problems": [], "catalog_checked": bool(catalog)}

    @router.get("/catalog")
    async def catalog() -> dict[str, Any]:
        """Plugins the task queue's workers offer, and the nodes the engine runs itself,
        each with the JSON Schema of its configuration."""
        plugins = [plugin_entry(info) for info in await orch.get_plugin_catalog()]
        engine: list[dict[str, Any]] = [
            {
                "plugin_id": plugin_id,
                "description": _first_line(model.__doc__ or ""),
                "function": True,
                "source": False,
                "engine": True,
                "config_schema": model.model_json_schema(),
                "source_config_schema": None,
                "input_ports": [],
                "output_ports": [],
                "node_type": _ENGINE_NODE_TYPES.get(plugin_id, WorkflowNodeType.Custom).value,
            }
            for plugin_id, model in ENGINE_NODE_MODELS.items()
        ]
        return {"plugins": plugins + engine, "published": bool(plugins)}

    # -- executions ----------------------------------------------------------------------

    @router.post("/workflows/{workflow_id}/executions", status_code=201)
    async def start_execution(
        workflow_id: str, body: Annotated[StartExecution | None, Body()] = None
    ) -> dict[str, Any]:
        """Start an execution of the definition's current version."""
        execution_id = await orch.execute_workflow(
            workflow_id, body.input_data if body is not None else None
        )
        return {"execution_id": execution_id, "temporal_ui": ui_link(execution_id)}

    @router.get("/executions")
    async def list_executions(
        workflow_id: str | None = None,
        status: Annotated[
            Literal[
                "pending",
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

    @router.get("/executions/{execution_id:path}/events", response_model=None)
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

    @router.post("/executions/{execution_id:path}/nodes/{node_id}/skip")
    async def skip_node(
        execution_id: str, node_id: str, body: Annotated[SkipNodeBody | None, Body()] = None
    ) -> dict[str, Any]:
        """Complete a node with the given output instead of running it."""
        await orch.skip_node(execution_id, node_id, body.output if body else None)
        return {"ok": True}

    @router.post("/executions/{execution_id:path}/nodes/{node_id}/approve")
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
        @router.post(
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

    @router.get("/executions/{execution_id:path}")
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

    @router.api_route(
        "/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"], include_in_schema=False
    )
    async def unknown(rest: str) -> JSONResponse:
        return JSONResponse(
            {"code": "NotFound", "message": f"no API route /api/{rest[:100]}", "details": {}},
            status_code=404,
        )

    return router


# -- helpers -------------------------------------------------------------------------------


def parse_workflow(data: dict[str, Any]) -> PluginWorkflow:
    """A definition from JSON; a bad one raises ``InvalidWorkflowStructure`` whose details
    carry ``problems`` (one per bad field)."""
    try:
        return PluginWorkflow.from_json(data)
    except PluginError as exc:
        errors = exc.details.get("errors", [])
        problems = [
            problem_from_field(data, ".".join(e["loc"]) or "(root)", e["msg"]) for e in errors
        ] or [{"code": exc.code.value, "message": exc.message, "nodes": [], "connections": []}]
        raise PluginError(exc.code, exc.message, {**exc.details, "problems": problems}) from None


def problem_from_field(data: dict[str, Any], location: str, message: str) -> dict[str, Any]:
    """A problem for one invalid field (``nodes.2.node_type``), naming its node or
    connection."""
    nodes: list[str] = []
    connections: list[int] = []
    parts = location.split(".")
    if len(parts) >= 2 and parts[1].isdigit():
        index = int(parts[1])
        if parts[0] == "nodes":
            raw = data.get("nodes")
            if isinstance(raw, list) and index < len(raw) and isinstance(raw[index], dict):
                nodes.append(str(raw[index].get("node_id", "")))
        elif parts[0] == "connections":
            connections.append(index)
    return {
        "code": Code.InvalidWorkflowStructure.value,
        "message": f"{location}: {message}",
        "nodes": nodes,
        "connections": connections,
    }


def problem(workflow: PluginWorkflow, code: str, message: str) -> dict[str, Any]:
    """A validation problem with the nodes (ids) and connections (indices) it names."""
    nodes = [
        node.node_id
        for node in workflow.nodes
        if node.node_id
        and (f"node '{node.node_id}'" in message or f"node_id '{node.node_id}'" in message)
    ]
    nodes += [
        f"#{index}"
        for index, node in enumerate(workflow.nodes)
        if not node.node_id and f"node #{index}" in message
    ]
    connections = [
        index
        for index, conn in enumerate(workflow.connections)
        if ((conn.source_node or conn.connection_id) and conn.label() in message)
        or f"connection #{index}" in message
    ]
    if cycle := re.search(r"circular dependency: (.+)$", message):
        path = [part.strip() for part in cycle.group(1).split(" -> ")]
        nodes += [node_id for node_id in dict.fromkeys(path) if node_id not in nodes]
        pairs = set(itertools.pairwise(path))
        connections += [
            index
            for index, conn in enumerate(workflow.connections)
            if (conn.source_node, conn.target_node) in pairs and index not in connections
        ]
    return {"code": code, "message": message, "nodes": nodes, "connections": connections}


async def catalog_of(orch: AdvancedPluginOrchestrator) -> dict[str, PluginInfo]:
    """The task queue's plugin catalog by id (empty before any worker published one)."""
    return {info.plugin_id: info for info in await orch.get_plugin_catalog()}


async def check_definition_off_loop(
    workflow: PluginWorkflow, catalog: dict[str, PluginInfo]
) -> None:
    """:func:`check_definition` in a thread: compiling every condition and expression of a
    large definition takes seconds of CPU, during which other requests are served."""
    await asyncio.to_thread(check_definition, workflow, catalog)


def check_definition(workflow: PluginWorkflow, catalog: dict[str, PluginInfo]) -> None:
    """:func:`validate_with_catalog` (structure, and every node against the catalog), with
    nodes and connections named in its problems."""
    try:
        validate_with_catalog(workflow, catalog)
    except PluginError as exc:
        raise _annotated(workflow, exc) from None


async def annotate_async(workflow: PluginWorkflow, step: Awaitable[T]) -> T:
    """Await a registration step; name nodes and connections in its problems."""
    try:
        return await step
    except PluginError as exc:
        raise _annotated(workflow, exc) from None


def _annotated(workflow: PluginWorkflow, exc: PluginError) -> PluginError:
    raw = exc.details.get("problems")
    if isinstance(raw, list):
        problems = [
            problem(workflow, str(p.get("code", exc.code.value)), str(p.get("message", "")))
            for p in raw
            if isinstance(p, dict)
        ]
    elif exc.code in _INVALID or "node_id" in exc.details:
        problems = [problem(workflow, exc.code.value, exc.message)]
        node_id = exc.details.get("node_id")
        if node_id and node_id not in problems[0]["nodes"]:
            problems[0]["nodes"].append(node_id)
    else:
        return exc
    return PluginError(exc.code, exc.message, {**exc.details, "problems": problems})


def plugin_entry(info: PluginInfo) -> dict[str, Any]:
    """A catalog entry as JSON, with the node type the designer suggests for it."""
    entry = info.model_dump(mode="json")
    entry["engine"] = False
    entry["node_type"] = (
        WorkflowNodeType.Source if info.source and not info.function else WorkflowNodeType.Processor
    ).value
    return entry


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


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
