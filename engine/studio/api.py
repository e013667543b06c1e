"""What every route of the studio's API shares: engine errors as HTTP responses, the base of
request bodies, and the JSON 404 for a path no route serves.

Every engine error becomes a JSON body ``{"code", "message", "details"}`` with a status from its
code (see :data:`STATUS_OF`); a request the API cannot read (a bad body, query or path
parameter) becomes ``InvalidInput`` with status 422. The size of request bodies is limited by
the guard (:data:`engine.studio.guard.MAX_BODY`), before any route reads them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from engine.base.errors import PluginError, PluginErrorCode

Code = PluginErrorCode

NOT_FOUND = {
    Code.WorkflowNotFound,
    Code.ExecutionNotFound,
    Code.NodeNotFound,
    Code.ScheduleNotFound,
}
INVALID = {
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
    **dict.fromkeys(NOT_FOUND, 404),
    **dict.fromkeys(INVALID, 422),
    Code.InvalidState: 409,
    Code.WorkflowAlreadyExists: 409,
    Code.ScheduleAlreadyExists: 409,
    Code.WorkerUnavailable: 503,
    Code.ServerUnavailable: 503,
    Code.Timeout: 504,
    Code.ConcurrencyLimitReached: 429,
}
"""HTTP status of each error code (others: 500). A code raised by validation (its details
carry ``problems``) is always 422, ``NodeNotFound`` included."""


class RequestBody(BaseModel):
    """The base of request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


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


async def plugin_error_response(request: Request, exc: PluginError) -> JSONResponse:
    """The exception handler of engine errors."""
    return JSONResponse(error_body(exc), status_code=status_of(exc))


async def request_error_response(request: Request, exc: RequestValidationError) -> JSONResponse:
    """The exception handler of requests the API cannot read."""
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


def unknown_route() -> APIRouter:
    """A JSON 404 for every other path under ``/api``: included after every other router."""
    routes = APIRouter()

    @routes.api_route(
        "/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"], include_in_schema=False
    )
    async def unknown(rest: str) -> JSONResponse:
        return JSONResponse(
            {"code": "NotFound", "message": f"no API route /api/{rest[:100]}", "details": {}},
            status_code=404,
        )

    return routes
