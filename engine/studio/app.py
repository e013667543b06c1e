"""The studio's ASGI app: the request guard around the JSON API under ``/api`` (one router per
resource, see :mod:`engine.studio.routes`), the webhook receiver at ``/hooks/{id}`` and the
built front end, served from ``static/`` at ``/``; and the receiver alone
(:func:`create_hooks_app`, for ``orchestrator serve``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from engine.base.errors import PluginError
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.studio.api import plugin_error_response, request_error_response, unknown_route
from engine.studio.guard import Guard, check_token
from engine.studio.routes import (
    catalog,
    executions,
    hook_admin,
    hooks,
    info,
    schedules,
    workflows,
)

STATIC_DIR = Path(__file__).parent / "static"


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
    app = FastAPI(
        title="plugin-orchestrator studio",
        summary="Design graph workflows and watch their durable runs live",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    # In this order: a path is served by the first route that matches it.
    app.include_router(
        info.router(orchestrator, ui_url=ui_url, auth=token is not None), prefix="/api"
    )
    app.include_router(workflows.router(orchestrator), prefix="/api")
    app.include_router(catalog.router(orchestrator), prefix="/api")
    app.include_router(executions.router(orchestrator, ui_url=ui_url), prefix="/api")
    app.include_router(hook_admin.router(orchestrator), prefix="/api")
    app.include_router(schedules.router(orchestrator, ui_url=ui_url), prefix="/api")
    app.include_router(unknown_route(), prefix="/api")
    app.include_router(hooks.router(orchestrator))
    app.add_exception_handler(PluginError, plugin_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, request_error_response)  # type: ignore[arg-type]
    _mount_front_end(app, static_dir or STATIC_DIR)
    app.add_middleware(Guard, token=token, allowed_hosts=allowed_hosts)
    return app


def create_hooks_app(
    orchestrator: AdvancedPluginOrchestrator, *, allowed_hosts: Iterable[str] | None = None
) -> FastAPI:
    """Only the webhook receiver (``POST /hooks/{id}``), in the same guard: what
    ``orchestrator serve`` exposes. No ``/api``, no front end, no API docs: nothing answers
    without a hook's signature, so it needs no token to bind beyond localhost."""
    app = FastAPI(
        title="plugin-orchestrator webhooks", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.include_router(hooks.router(orchestrator))
    app.add_exception_handler(PluginError, plugin_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, request_error_response)  # type: ignore[arg-type]
    app.add_middleware(Guard, allowed_hosts=allowed_hosts)
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
