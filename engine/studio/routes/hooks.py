"""``POST /hooks/{hook_id}``: a signed delivery starts an execution or sends an event.

Outside ``/api``: senders authenticate with the hook's HMAC signature
(:mod:`engine.client.hook_signing`), not with the studio's token. In this order:

1. a hook id that is not one of this namespace's and task queue's hooks: 404, the same
   answer for every such id (nothing says which hooks exist);
2. past the hook's rate (every request counts, before its body is read): 429 with
   ``Retry-After``;
3. a body over the hook's ``max_body_bytes`` (by ``Content-Length``, or while it is read):
   413, never holding more than the limit and one chunk;
4. a missing, unreadable, stale or future-dated, or wrong signature: 401, nothing started;
5. a body that is not a JSON object (read strictly), or an idempotency key out of bounds: 422;
6. the delivery (:func:`engine.client.hooks.deliver`; repeats of a key that arrive together
   in this process wait for the first): 202 with the new execution's id, or
   200 with the same id for a repeat of a key already delivered (``"duplicate": true``);
   an event hook answers 202 with the execution id and the event id (the execution drops
   a repeated event id itself). Engine errors answer as the API does (a definition gone:
   404 ``WorkflowNotFound``; an execution that ended: 409; a busy one: 504).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from engine.base.errors import PluginError, PluginErrorCode
from engine.client.hook_signing import SIGNATURE_HEADER, SignatureError, delivery_digest, verify
from engine.client.hook_store import HookRecord
from engine.client.hooks import deliver, key_problem
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.language.models import MAX_JSON_DEPTH, load_json_text
from engine.language.validation import check_id
from engine.studio.api import error_body, status_of
from engine.studio.rate_limit import RateLimiter

Code = PluginErrorCode

IDEMPOTENCY_HEADER = "Idempotency-Key"


def router(orch: AdvancedPluginOrchestrator, limiter: RateLimiter | None = None) -> APIRouter:
    """The webhook receiver (one rate limiter per app unless given)."""
    routes = APIRouter()
    limits = limiter or RateLimiter()
    in_flight = _SingleFlight()

    @routes.post("/hooks/{hook_id}", include_in_schema=False, response_model=None)
    async def receive(hook_id: str, request: Request) -> JSONResponse:
        hook = None
        if check_id("hook_id", hook_id) is None:
            hook = await asyncio.to_thread(
                orch.hook_store.get, hook_id, orch.client.namespace, orch.task_queue
            )
        if hook is None:
            return _answer(404, "NotFound", "no such hook")
        wait = limits.take(hook.hook_id, hook.rate_per_minute)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            return _answer(
                429,
                "TooManyRequests",
                f"this hook takes {hook.rate_per_minute} requests a minute; retry in {seconds}s",
                headers={"retry-after": str(seconds)},
            )
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > hook.max_body_bytes):
            return _too_large(hook)
        body = await _read_capped(request, hook.max_body_bytes)
        if body is None:
            return _too_large(hook)
        try:
            timestamp = verify(
                request.headers.get(SIGNATURE_HEADER),
                body,
                hook.secrets_at(time.time()),
                tolerance=hook.tolerance_seconds,
            )
        except SignatureError as exc:
            return _answer(401, "Unauthorized", str(exc))
        try:
            payload = _json_object(body)
            key = _key(hook, request, payload) or delivery_digest(timestamp, body)
            # Repeats arriving together wait for the first, then find what it did.
            async with in_flight.hold(f"{hook.hook_id}\n{key}"):
                delivery = await deliver(orch, hook, payload, key)
        except PluginError as exc:
            return JSONResponse(error_body(exc), status_code=status_of(exc))
        answer: dict[str, Any] = {
            "hook_id": hook.hook_id,
            "action": hook.action,
            "execution_id": delivery.execution_id,
            "duplicate": delivery.duplicate,
        }
        if delivery.event_id is not None:
            answer["event_id"] = delivery.event_id
        return JSONResponse(answer, status_code=200 if delivery.duplicate else 202)

    return routes


class _SingleFlight:
    """One delivery of a key at a time in this process (other processes race in Temporal,
    which lets one start win). An entry lives while requests hold or wait for it, so the
    table is bounded by the requests in flight."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any]:
    data = load_json_text(
        body or b"{}", what="the request body", code=Code.InvalidInput, max_depth=MAX_JSON_DEPTH
    )
    if not isinstance(data, dict):
        raise PluginError(
            Code.InvalidInput, f"the request body must be a JSON object, not {type(data).__name__}"
        )
    return data


def _key(hook: HookRecord, request: Request, payload: dict[str, Any]) -> str | None:
    """The delivery's idempotency key: the header, else the hook's body field, else None.

    Raises:
        PluginError: ``InvalidInput`` for a key out of bounds.
    """
    key = request.headers.get(IDEMPOTENCY_HEADER)
    where = f"the {IDEMPOTENCY_HEADER} header"
    if key is None and hook.idempotency_field:
        value = payload.get(hook.idempotency_field)
        if isinstance(value, bool) or not isinstance(value, str | int):
            if value is None:
                return None
            raise PluginError(
                Code.InvalidInput,
                f"the body field {hook.idempotency_field!r} must be a string or an integer",
            )
        key, where = str(value), f"the body field {hook.idempotency_field!r}"
    if key is not None and (problem := key_problem(key)):
        raise PluginError(Code.InvalidInput, f"{where}: {problem}")
    return key


def _too_large(hook: HookRecord) -> JSONResponse:
    return _answer(
        413,
        "InvalidInput",
        f"request body larger than {hook.max_body_bytes:,} bytes",
        headers={"connection": "close"},
    )


def _answer(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "details": {}}, status_code=status, headers=headers
    )
