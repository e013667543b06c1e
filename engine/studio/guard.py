"""The studio's request guard: authentication, same-origin basics and security headers.

One pure ASGI middleware (no ``BaseHTTPMiddleware``, so Server-Sent Events stream through
untouched) that, for every HTTP request:

* with ``allowed_hosts``, refuses a ``Host`` header naming another host (400), which stops
  DNS-rebinding pages from reading a studio bound to the loopback interface;
* with a ``token``, requires ``Authorization: Bearer <token>`` on every ``/api`` request
  (401 otherwise); the event stream, which browsers open with ``EventSource`` and cannot give
  headers, also accepts ``?token=``;
* requires ``Content-Type: application/json`` on ``POST``, ``PUT``, ``PATCH`` and ``DELETE``
  requests to ``/api`` (415), so a cross-site HTML form, which can only send form or text
  bodies, cannot steer executions; a cross-site script setting that type needs a CORS
  preflight, which nothing here answers;
* refuses bodies larger than ``max_body`` bytes (413): at once when ``Content-Length`` says
  so, and otherwise (a chunked body) on the bytes actually read, counted as the app reads
  them: past the limit the guard answers 413 itself and the app sees the client leave, so
  at most ``max_body`` bytes and one chunk are ever held;
* adds ``nosniff``, ``DENY`` framing, ``no-referrer`` and a same-origin Content Security
  Policy to every response.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.base.errors import PluginError, PluginErrorCode

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EVENTS_SUFFIX = "/events"
#: The largest request body, in bytes (4 MiB): a definition is far smaller.
MAX_BODY = 4 * 1024 * 1024
#: The shortest token accepted: 16 characters (``secrets.token_urlsafe(32)`` gives 43).
MIN_TOKEN_LENGTH = 16

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        b"base-uri 'none'; form-action 'none'",
    ),
]


class Guard:
    """ASGI middleware; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None = None,
        allowed_hosts: Iterable[str] | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.allowed_hosts = {h.lower() for h in allowed_hosts} if allowed_hosts else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            status, code, text, extra = refusal
            await _reply(send_with_headers, status, code, text, extra)
            return
        body = _BodyLimit(receive, send_with_headers, self.max_body)
        try:
            await self.app(scope, body.receive, body.send)
        except Exception:
            if not body.refused:
                raise
            # The app failed on the "disconnect" it was told of; the 413 is already sent.

    def _refusal(self, scope: Scope) -> tuple[int, str, str, list[tuple[bytes, bytes]]] | None:
        headers = _headers(scope)
        if self.allowed_hosts is not None:
            host = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed_hosts:
                return 400, "InvalidHost", f"host {host[:100]!r} is not served here", []
        path: str = scope.get("path", "")
        if not (path == "/api" or path.startswith("/api/")):
            return None
        if self.token is not None and not self._authorized(scope, headers, path):
            return (
                401,
                "Unauthorized",
                "this studio needs its token: send 'Authorization: Bearer <token>'",
                [(b"www-authenticate", b'Bearer realm="studio"')],
            )
        method: str = scope.get("method", "GET")
        if method in UNSAFE_METHODS:
            media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if media_type != b"application/json":
                return (
                    415,
                    "UnsupportedMediaType",
                    f"{method} requests must send 'Content-Type: application/json' "
                    "(an empty object when there is nothing to say)",
                    [],
                )
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return 400, "InvalidInput", "invalid Content-Length", []
            if too_big:
                return (
                    413,
                    "InvalidInput",
                    f"request body larger than {self.max_body:,} bytes",
                    [],
                )
        return None

    def _authorized(self, scope: Scope, headers: dict[bytes, bytes], path: str) -> bool:
        assert self.token is not None
        auth = headers.get(b"authorization", b"")
        scheme, _, given = auth.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token):
            return True
        if path.endswith(EVENTS_SUFFIX) and scope.get("method") == "GET":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            for value in query.get("token", []):
                if hmac.compare_digest(value.encode("latin-1", "replace"), self.token):
                    return True
        return False


def check_token(token: str) -> None:
    """Refuse a token that is too short to resist guessing, or that a client cannot send.

    Raises:
        PluginError: ``InvalidConfiguration``: shorter than :data:`MIN_TOKEN_LENGTH`
            characters, or holding characters other than printable ASCII without spaces.
    """
    if len(token) < MIN_TOKEN_LENGTH:
        raise PluginError(
            PluginErrorCode.InvalidConfiguration,
            f"the studio token is {len(token)} characters long; at least {MIN_TOKEN_LENGTH} "
            "are needed. Make one with: python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'",
        )
    if not all("!" <= char <= "~" for char in token):
        raise PluginError(
            PluginErrorCode.InvalidConfiguration,
            "the studio token must be printable ASCII without spaces (it is sent in an "
            "'Authorization: Bearer' header)",
        )


class _BodyLimit:
    """Counts the request body's bytes as the app reads them (chunked bodies have no
    ``Content-Length`` to check). Past the limit it answers 413 itself, then tells the app
    the client has gone and drops whatever the app still sends."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive = receive
        self._send = send
        self._limit = limit
        self._read = 0
        self._started = False
        self.refused = False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self._read += len(message.get("body", b""))
            if self._read > self._limit:
                self.refused = True
                if not self._started:
                    await _reply(
                        self._send,
                        413,
                        "InvalidInput",
                        f"request body larger than {self._limit:,} bytes",
                        [(b"connection", b"close")],
                    )
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _host_name(host: str) -> str:
    """The host of a ``Host`` header without its port (``[::1]:8080`` -> ``[::1]``)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _reply(
    send: Send, status: int, code: str, message: str, extra: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"code": code, "message": message, "details": {}}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
