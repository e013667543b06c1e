"""``http_request`` against a real HTTP server on the loopback interface.

The server is Python's ``http.server`` in a thread, on a free port, started by the test
module: real sockets, real HTTP/1.1, nothing mocked. Its endpoints cover JSON, text and
binary bodies, a flaky endpoint (500, then 200), error statuses, a slow endpoint, bodies
larger than the limit (with and without Content-Length, and compressed) and redirects.

The worker's egress policy refuses loopback addresses by default; these tests open
127.0.0.1 as an operator would, with ``ORCHESTRATOR_HTTP_ALLOW`` (the refusals are in
test_http_egress.py).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from engine.base.errors import PluginError, PluginErrorCode
from plugins import Plugin, PluginContext
from plugins.builtin import http_request_plugin
from plugins.builtin.http_request import HttpServerError, decode_body
from tests.helpers.plugin_config import names_key


class Server:
    """The test server's address and what it saw."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.hits: Counter[str] = Counter()  # path (without query) -> requests
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits[path]


#: What the bombs inflate to: 100 times the default max_response_bytes.
BOMB_BYTES = 100 * 1024 * 1024


@functools.cache
def bomb(encoding: str) -> bytes:
    """BOMB_BYTES of zeros, compressed with ``encoding`` (``gzip``, ``deflate`` or
    ``gzip,gzip``): about 100 KB, or 1 KB twice compressed."""
    data = b"\0" * BOMB_BYTES
    for name in reversed([part.strip() for part in encoding.split(",")]):
        data = gzip.compress(data, 9) if name == "gzip" else zlib.compress(data, 9)
    return data


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: Server  # set on the class the fixture makes

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        state = self.server_state
        with state.lock:
            state.hits[parts.path] += 1
            hits = state.hits[parts.path]
        query = parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = parts.path
        if path == "/json":
            self._send(200, {"hello": "world", "n": 1})
        elif path == "/echo":
            self._send(
                200,
                {
                    "method": self.command,
                    "query": query,
                    "token": self.headers.get("X-Token"),
                    "content_type": self.headers.get("Content-Type"),
                    "body": json.loads(body) if body else None,
                },
            )
        elif path.startswith("/flaky/"):  # 500 on the first request, then 200
            if hits == 1:
                self._send(500, b"try again", "text/plain")
            else:
                self._send(200, {"hits": hits})
        elif path.startswith("/busy/"):  # 429 on the first request, then 200
            if hits == 1:
                self._send(429, b"slow down", "text/plain")
            else:
                self._send(200, {"hits": hits})
        elif path == "/always500":
            self._send(500, b"database unavailable", "text/plain")
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            # X-Corrupt: the body claims to be gzip and is not.
            corrupt = {"Content-Encoding": "gzip"} if self.headers.get("X-Corrupt") else None
            self._send(code, f"status {code} here".encode(), "text/plain", corrupt)
        elif path == "/slow":
            time.sleep(float(query.get("s", ["2"])[0]))
            self._send(200, {"slow": True})
        elif path == "/big":
            self._send(200, b"x" * int(query["n"][0]), "text/plain")
        elif path == "/stream":  # no Content-Length: the body ends when the connection does
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for _ in range(int(query["chunks"][0])):
                self.wfile.write(b"y" * 1000)
        elif path == "/gzip":
            data = gzip.compress(b"z" * int(query["n"][0]))
            self._send(200, data, "text/plain", {"Content-Encoding": "gzip"})
        elif path == "/bomb":  # a small body that inflates to BOMB_BYTES
            encoding = query.get("encoding", ["gzip"])[0]
            status = int(query.get("status", ["200"])[0])
            self._send(status, bomb(encoding), "text/plain", {"Content-Encoding": encoding})
        elif path == "/latin1":
            self._send(200, "café".encode("latin-1"), "text/plain; charset=latin-1")
        elif path == "/binary":
            self._send(200, bytes(range(256)), "application/octet-stream")
        elif path == "/badjson":
            self._send(200, b"{not json", "application/json")
        elif path == "/problem":
            self._send(200, b'{"title": "x"}', "application/problem+json")
        elif path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": "/json"})
        else:
            self._send(404, b"no such thing", "text/plain")

    def _send(
        self,
        status: int,
        body: bytes | dict[str, Any],
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Multi", "one")
        self.send_header("X-Multi", "two")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)  # the client may have given up (timeout tests)


@pytest.fixture(autouse=True)
def allow_the_test_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test server listens on 127.0.0.1: opened as an operator would."""
    monkeypatch.setenv("ORCHESTRATOR_HTTP_ALLOW", "127.0.0.1")


@pytest.fixture(name="server", scope="module")
def fixture_server() -> Iterator[Server]:
    class BoundHandler(Handler):
        pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BoundHandler)
    httpd.daemon_threads = True
    state = Server(int(httpd.server_address[1]))
    BoundHandler.server_state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def make_ctx() -> PluginContext:
    return PluginContext(
        execution_id="e",
        workflow_id="w",
        node_id="fetch",
        plugin_id="http_request",
        attempt=1,
        idempotency_key="k",
    )


async def call(
    config: dict[str, Any],
    inputs: dict[str, Any] | None = None,
    plugin: Plugin = http_request_plugin,
) -> dict[str, Any]:
    """Call the plugin as the engine does: configuration checked by its model first."""
    result = await plugin.function(inputs or {}, plugin.check_config(config), make_ctx())  # type: ignore[misc]
    assert isinstance(result, dict)
    assert json.loads(json.dumps(result, allow_nan=False)) == result  # strict JSON
    return result


async def failure(config: dict[str, Any], inputs: dict[str, Any] | None = None) -> BaseException:
    """The exception the call raises (the tests check its exact type)."""
    try:
        await call(config, inputs)
    except Exception as exc:
        return exc
    raise AssertionError(f"no exception for {config}")


FAST = {"retry_backoff": 0.01}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- success ----------------------------------------------------------------------------------


async def test_get_json(server: Server) -> None:
    result = await call({"url": server.url("/json")})
    assert result["status"] == 200
    assert result["json"] == {"hello": "world", "n": 1}
    assert "text" not in result
    assert "base64" not in result
    assert result["headers"]["content-type"] == "application/json"
    assert result["headers"]["x-multi"] == "one, two"
    assert result["url"] == server.url("/json")
    assert result["elapsed_ms"] > 0


async def test_post_with_body_headers_and_query(server: Server) -> None:
    result = await call(
        {
            "url": server.url("/echo?fixed=1"),
            "method": "POST",
            "headers": {"X-Token": "secret"},
            "query": {"page": 2, "tags": ["a", "b"], "all": True, "ratio": 0.5},
            "json": {"order": {"id": 7, "items": [1, 2]}},
        }
    )
    assert result["json"] == {
        "method": "POST",
        "query": {
            "fixed": ["1"],
            "page": ["2"],
            "tags": ["a", "b"],
            "all": ["true"],
            "ratio": ["0.5"],
        },
        "token": "secret",
        "content_type": "application/json",
        "body": {"order": {"id": 7, "items": [1, 2]}},
    }


async def test_body_from_input(server: Server) -> None:
    upstream = {"records": [{"id": 1}], "count": 1}
    config = {"url": server.url("/echo"), "method": "PUT", "body_from_input": "source"}
    result = await call(config, {"source": upstream, "other": 1})
    assert (result["json"]["method"], result["json"]["body"]) == ("PUT", upstream)

    error = await failure(config, {"other": 1})
    assert isinstance(error, PluginError)
    assert error.code is PluginErrorCode.PluginExecutionFailed
    assert "input 'source'" in error.message


async def test_text_binary_and_head(server: Server) -> None:
    assert (await call({"url": server.url("/latin1")}))["text"] == "café"
    binary = await call({"url": server.url("/binary")})
    assert "text" not in binary
    assert base64.b64decode(binary["base64"]) == bytes(range(256))
    # Declared JSON that does not parse is handed over as text.
    assert (await call({"url": server.url("/badjson")}))["text"] == "{not json"
    assert (await call({"url": server.url("/problem")}))["json"] == {"title": "x"}
    head = await call({"url": server.url("/json"), "method": "HEAD"})
    assert (head["status"], head["text"]) == (200, "")
    assert await call({"url": server.url("/echo"), "method": "DELETE"})


async def test_redirects(server: Server) -> None:
    followed = await call({"url": server.url("/redirect")})
    assert (followed["status"], followed["url"], followed["json"]["hello"]) == (
        200,
        server.url("/json"),
        "world",
    )
    error = await failure({"url": server.url("/redirect"), "follow_redirects": False})
    assert isinstance(error, PluginError)
    assert "answered 302" in error.message
    kept = await call(
        {"url": server.url("/redirect"), "follow_redirects": False, "expect_status": [302]}
    )
    assert (kept["status"], kept["headers"]["location"]) == (302, "/json")


# --- retries and errors ---------------------------------------------------------------------


async def test_flaky_endpoint_is_retried_within_the_attempt(server: Server) -> None:
    result = await call({"url": server.url("/flaky/a"), **FAST})
    assert (result["status"], result["json"]) == (200, {"hits": 2})
    assert server.count("/flaky/a") == 2
    busy = await call({"url": server.url("/busy/a"), **FAST})  # 429 is retried too
    assert busy["json"] == {"hits": 2}


async def test_5xx_after_retries_is_a_retryable_exception(server: Server) -> None:
    before = server.count("/always500")
    error = await failure({"url": server.url("/always500"), "retries": 2, **FAST})
    assert type(error) is HttpServerError  # not a PluginError: the engine's retries apply
    assert server.url("/always500") in str(error)
    assert "answered 500" in str(error)
    assert "database unavailable" in str(error)
    assert server.count("/always500") - before == 3

    # Without retries: one request.
    await failure({"url": server.url("/always500"), "retries": 0})
    assert server.count("/always500") - before == 4


async def test_4xx_is_a_terminal_plugin_error_naming_url_and_status(server: Server) -> None:
    error = await failure({"url": server.url("/status/404"), **FAST})
    assert isinstance(error, PluginError)
    assert error.code is PluginErrorCode.PluginExecutionFailed
    assert server.url("/status/404") in error.message
    assert "answered 404" in error.message
    assert "status 404 here" in error.message
    assert error.details["status"] == 404
    assert server.count("/status/404") == 1  # never retried

    accepted = await call({"url": server.url("/status/404"), "expect_status": [200, 404]})
    assert (accepted["status"], accepted["text"]) == (404, "status 404 here")
    # expect_status also narrows: a 201 not listed is a failure.
    error = await failure({"url": server.url("/status/201"), "expect_status": [200]})
    assert isinstance(error, PluginError)
    assert "answered 201" in error.message


async def test_slow_endpoint_times_out(server: Server) -> None:
    started = time.monotonic()
    error = await failure({"url": server.url("/slow?s=3"), "request_timeout": 0.3, "retries": 0})
    assert type(error) is TimeoutError
    assert "0.3 s" in str(error) or "timed out" in str(error)
    assert time.monotonic() - started < 2.0

    before = server.count("/slow")
    error = await failure(
        {"url": server.url("/slow?s=3"), "request_timeout": 0.2, "retries": 1, **FAST}
    )
    assert type(error) is TimeoutError
    assert server.count("/slow") - before == 2
    # Slow but within the timeout is fine.
    assert (await call({"url": server.url("/slow?s=0.1"), "request_timeout": 5}))["json"]


async def test_refused_connection_is_a_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/x"
    started = time.monotonic()
    error = await failure({"url": url, "retries": 1, **FAST})
    assert type(error) is ConnectionError
    assert url in str(error)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "path",
    ["/big?n=5000", "/stream?chunks=5", "/gzip?n=5000"],
    ids=["content-length", "no-content-length", "compressed"],
)
async def test_bodies_over_the_limit_are_refused(server: Server, path: str) -> None:
    error = await failure({"url": server.url(path), "max_response_bytes": 2000})
    assert isinstance(error, PluginError)
    assert error.code is PluginErrorCode.PluginExecutionFailed
    assert "max_response_bytes" in error.message
    # A HEAD answer announces the GET body's length, but has no body: fine.
    head = await call({"url": server.url(path), "method": "HEAD", "max_response_bytes": 2000})
    assert (head["status"], head["text"]) == (200, "")
    # Within the limit they are read whole.
    result = await call({"url": server.url(path), "max_response_bytes": 5000})
    assert len(result["text"]) == 5000


async def test_default_limit_refuses_a_huge_body(server: Server) -> None:
    error = await failure({"url": server.url("/big?n=1000001")})
    assert isinstance(error, PluginError)
    assert "1,000,000" in error.message
    assert len((await call({"url": server.url("/big?n=1000000")}))["text"]) == 1_000_000


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "gzip,gzip"])
async def test_a_compression_bomb_is_refused_while_it_inflates(
    server: Server, encoding: str
) -> None:
    """About 100 KB on the wire, 100 MiB inflated: the decoded bytes are counted as they
    are decoded, a step at a time, so the refusal comes after about max_response_bytes of
    memory, not 100 MiB (httpx decodes each received chunk whole: the probe's 2.1 MB body
    took 132 MiB before it was refused)."""
    assert len(bomb(encoding)) < 200_000
    tracemalloc.start()
    try:
        error = await failure({"url": server.url(f"/bomb?encoding={encoding}")})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, PluginError)
    assert error.code is PluginErrorCode.PluginExecutionFailed
    assert "larger than max_response_bytes (1,000,000 bytes)" in error.message
    assert peak < 4_000_000, f"{peak / 1e6:.1f} MB at peak"


async def test_an_error_answer_reads_only_a_snippet_of_a_bomb(server: Server) -> None:
    tracemalloc.start()
    try:
        error = await failure({"url": server.url("/bomb?status=404"), "retries": 0})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, PluginError)
    assert "answered 404" in error.message
    assert peak < 2_000_000, f"{peak / 1e6:.1f} MB at peak"


async def test_a_corrupt_compressed_body_is_a_clear_error(server: Server) -> None:
    error = await failure({"url": server.url("/status/200"), "headers": {"X-Corrupt": "1"}})
    assert isinstance(error, PluginError)
    assert "cannot be decoded: the gzip body is corrupt" in error.message


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "url"),
        ({"url": "ftp://example.org/file"}, "url"),
        ({"url": "http://"}, "url"),
        ({"url": "http://h/", "method": "FETCH"}, "method"),
        ({"url": "http://h/", "headers": {"Bad Name": "x"}}, "headers"),
        ({"url": "http://h/", "headers": {"X-A": "a\r\nX-B: b"}}, "headers"),
        ({"url": "http://h/", "query": {"a": {"b": 1}}}, "query"),
        ({"url": "http://h/", "json": {}, "body_from_input": "x"}, "body_from_input"),
        ({"url": "http://h/", "json": "text"}, "json"),
        ({"url": "http://h/", "retries": 11}, "retries"),
        ({"url": "http://h/", "retries": -1}, "retries"),
        ({"url": "http://h/", "request_timeout": 0}, "request_timeout"),
        ({"url": "http://h/", "retry_backoff": -1}, "retry_backoff"),
        ({"url": "http://h/", "expect_status": [700]}, "expect_status"),
        ({"url": "http://h/", "max_response_bytes": 0}, "max_response_bytes"),
        ({"url": "http://h/", "max_response_bytes": 1_500_001}, "max_response_bytes"),
    ],
)
async def test_bad_configuration_names_the_key(config: dict[str, Any], key: str) -> None:
    """Refused by the model (with its checks of what a JSON Schema cannot say: the URL's
    host, header names and values) before any request."""
    with pytest.raises(PluginError) as info:
        await call(config)
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert names_key(info.value.message, key), info.value.message


def test_is_async() -> None:
    assert http_request_plugin.is_async


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [
        (b'{"a": 1}', "application/json", {"json": {"a": 1}}),
        (b"[1, 2]", "application/vnd.api+json; charset=utf-8", {"json": [1, 2]}),
        (b"NaN", "application/json", {"text": "NaN"}),
        (b"", "application/json", {"text": ""}),
        (b"hello", "", {"text": "hello"}),
        ("é".encode("latin-1"), 'text/plain; charset="ISO-8859-1"', {"text": "é"}),
        (b"plain", "text/plain; charset=no-such-charset", {"text": "plain"}),
        (b"\xff\xfe", "application/octet-stream", {"base64": "//4="}),
    ],
)
def test_decode_body(content: bytes, content_type: str, expected: dict[str, Any]) -> None:
    assert decode_body(content, content_type) == expected
