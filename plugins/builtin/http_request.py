"""``http_request``: call an HTTP(S) endpoint and return its status, headers and body.

Asynchronous (``httpx.AsyncClient``): it runs on the worker's event loop, not in a thread,
and is cancelled promptly when the node is.

Config:
    url (str, required): An ``http://`` or ``https://`` URL (other schemes are refused).
    method (str): ``GET`` (the default), ``POST``, ``PUT``, ``PATCH``, ``DELETE`` or ``HEAD``.
    headers (object): Request headers, name to string value.
    query (object): Query parameters, name to a string, number or boolean (``true`` /
        ``false``), or a list of them for a repeated parameter; added to any query the URL
        already has.
    json (object or array): A JSON request body (``Content-Type: application/json``).
    body_from_input (str): The name of an input whose value is sent as the JSON body
        instead (e.g. an upstream node's id). Not together with ``json``.
    request_timeout (number > 0): Seconds one try may take in all: connecting, sending and
        reading the whole response (default 30). This is not the engine's reserved node
        ``timeout``, which bounds the whole attempt, the retries below included.
    retries (int 0-10): Further tries, within the attempt, when the connection fails or times
        out or the server answers 5xx, 408 or 429 (default 2). A try is repeated as it was,
        so a POST may reach the server more than once: as with the engine's own retries,
        endpoints with side effects should be idempotent.
    retry_backoff (number >= 0): Seconds before the first of those retries, doubled for
        each next one (default 0.5).
    expect_status (list of int 100-599): The statuses that count as success (default: any
        2xx). A status listed here is a success even when it is 4xx or 5xx.
    max_response_bytes (int 1 - 1,500,000): The largest response body accepted, after
        content decoding (default 1,000,000). A larger body is an error: node outputs travel
        through Temporal, and the engine refuses outputs over 1,500,000 bytes of JSON. The
        decoded bytes are counted while the body is read and decoded (gzip and deflate, in
        steps of 64 KiB), so a small compressed body that inflates far beyond the limit is
        refused before it takes more than the limit and a step of memory.
    follow_redirects (bool): Follow redirects, at most 20 (default true). When false a 3xx
        answer is judged by ``expect_status`` like any other status.

Egress policy (the worker's, not the definition's): by default ``http_request`` refuses to
connect to loopback, private (RFC 1918, RFC 6598, unique local), link-local (the cloud
metadata address 169.254.169.254 included), unspecified, multicast and reserved addresses,
also when written inside an IPv6 address; the worker's operator opens some of them with
``ORCHESTRATOR_HTTP_ALLOW`` (addresses, CIDR ranges and host names, comma-separated; see
:mod:`plugins.builtin._egress`). Every address the host name resolves to is checked before
connecting, the connection goes to a checked address (no DNS rebinding in between), and
every redirect hop is checked the same way. Requests do not go through the
``HTTP_PROXY``/``HTTPS_PROXY`` of the environment (a proxy would connect to addresses the
worker never sees).

Inputs:
    Only with ``body_from_input``: the named input is the request body.

Output:
    ``status`` (int), ``headers`` (object: lower-case names; repeated headers joined with
    ``", "``), ``url`` (the final URL, after redirects), ``elapsed_ms`` (the successful
    try, in milliseconds), and the body as exactly one of: ``json`` (the parsed body, when
    the response's content type is ``application/json`` or ``*+json`` and it parses),
    ``text`` (the body decoded with the response's charset, default UTF-8; ``""`` for an
    empty body or ``HEAD``) or ``base64`` (a body that is not text in that charset).

URLs (with any password replaced by ``***``) appear in error messages and logs: pass
secrets in ``headers``, not in the URL's query.

Errors:
    Bad configuration is ``InvalidConfiguration`` naming the key. A status that is not
    expected and not retried (a 4xx other than 408 and 429, an unfollowed 3xx, a 1xx) is
    ``PluginExecutionFailed`` naming the URL and the status (not retried: the request is
    wrong). So is a connection the egress policy refuses (naming the host, the address, the
    rule and how to allow it), a response body over ``max_response_bytes`` or that does not
    decode, too many redirects or a redirect to another scheme, and a missing
    ``body_from_input`` input. An invalid ``ORCHESTRATOR_HTTP_ALLOW`` is
    ``InvalidConfiguration``. When the retries above are used up, the last
    failure is raised as an ordinary exception, so the engine's retry policy applies:
    ``HttpServerError`` for a 5xx, 408 or 429, ``TimeoutError`` for a try that took longer
    than ``request_timeout``, ``ConnectionError`` for a connection that failed.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
from pydantic import ConfigDict, Field, StringConstraints, model_validator

from engine.base.errors import PluginError, PluginErrorCode
from engine.runtime.contracts import MAX_PAYLOAD_BYTES
from plugins._context import PluginContext
from plugins._plugin import PluginBase
from plugins.builtin._common import config_error, data_error, loads_strict
from plugins.builtin._egress import EgressPolicy, EgressRefused, GuardedTransport, PolicyError
from plugins.builtin._inflate import ACCEPT_ENCODING, BodyDecoder, CorruptBody
from plugins.builtin._models import NonEmptyStr, NonNegativeSeconds, PluginConfig, PositiveSeconds
from plugins.builtin._streams import redact_url

#: The methods ``method`` accepts.
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
#: 4xx answers that mean "try again later" rather than "the request is wrong".
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
MAX_RETRIES = 10
MAX_REDIRECTS = 20
#: How much of an unexpected answer's body goes into the error message.
ERROR_SNIPPET_BYTES = 300

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_URL_PATTERN = r"^https?://[^\s/?#]+([/?#]\S*)?$"

QueryScalar = str | int | float | bool
StatusCode = Annotated[int, Field(ge=100, le=599)]


# The configuration key is "json" (httpx's name for a JSON body). The field shadows pydantic's
# deprecated ``BaseModel.json()`` method, which nothing calls on this model; pydantic warns.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class HttpRequestConfig(PluginConfig):
        """Configuration of ``http_request``."""

        model_config = ConfigDict(
            json_schema_extra={  # not 'json' and 'body_from_input' together
                "not": {
                    "required": ["json", "body_from_input"],
                    "properties": {
                        "json": {"type": ["object", "array"]},
                        "body_from_input": {"type": "string"},
                    },
                }
            }
        )

        url: Annotated[str, StringConstraints(pattern=_URL_PATTERN)] = Field(
            description="The http:// or https:// URL to call."
        )
        method: Method = Field("GET", description="The HTTP method.")
        headers: dict[NonEmptyStr, str] | None = Field(None, description="Request headers.")
        query: dict[NonEmptyStr, QueryScalar | list[QueryScalar]] | None = Field(
            None, description="Query parameters (a list repeats the parameter)."
        )
        json: dict[str, Any] | list[Any] | None = Field(  # type: ignore[assignment]
            None, description="A JSON request body (object or array)."
        )
        body_from_input: NonEmptyStr | None = Field(
            None, description="Send this input's value as the JSON body (not with 'json')."
        )
        request_timeout: PositiveSeconds = Field(
            30.0, description="Seconds one try may take in all (not the engine's node 'timeout')."
        )
        retries: int = Field(
            2,
            ge=0,
            le=MAX_RETRIES,
            description="Further tries on a 5xx, 408 or 429 answer or a failed connection.",
        )
        retry_backoff: NonNegativeSeconds = Field(
            0.5, description="Seconds before the first retry; doubled for each next one."
        )
        expect_status: Annotated[list[StatusCode], Field(min_length=1)] | None = Field(
            None, description="Statuses that count as success (default: any 2xx)."
        )
        max_response_bytes: int = Field(
            1_000_000,
            ge=1,
            le=MAX_PAYLOAD_BYTES,
            description="The largest response body accepted; larger is an error.",
        )
        follow_redirects: bool = Field(True, description="Follow redirects (at most 20).")

        @model_validator(mode="after")
        def _checks(self) -> HttpRequestConfig:
            if self.json is not None and self.body_from_input is not None:
                raise ValueError("give 'json' or 'body_from_input', not both")
            # What the JSON Schema cannot say: config_error passes through pydantic.
            _check_url(self.url)
            _check_headers(self.headers or {})
            return self


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise config_error("url", f"is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise config_error("url", f"must be an http:// or https:// URL, got {redact_url(url)!r}")


def _check_headers(headers: dict[str, str]) -> None:
    for name, text in headers.items():
        if not _HEADER_NAME.match(name):
            raise config_error("headers", f"has an invalid header name {name!r}")
        if "\r" in text or "\n" in text or "\0" in text:
            raise config_error("headers", f"value of '{name}' must not hold line breaks")


class HttpServerError(Exception):
    """The server kept answering 5xx, 408 or 429 through every retry (retryable)."""


@dataclass(frozen=True)
class _Request:
    url: str
    method: str
    headers: dict[str, str]
    query: dict[str, Any]
    body: Any
    has_body: bool
    timeout: float
    retries: int
    backoff: float
    expect: frozenset[int] | None
    max_bytes: int
    follow_redirects: bool

    @property
    def where(self) -> str:
        return f"{self.method} {redact_url(self.url)}"

    def expected(self, status: int) -> bool:
        return status in self.expect if self.expect is not None else 200 <= status <= 299


@dataclass(frozen=True)
class _Response:
    status: int
    reason: str
    headers: httpx.Headers
    url: str
    content: bytes


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _TooManyRedirects(Exception):
    pass


class HttpRequest(PluginBase):
    """Call an HTTP(S) endpoint; return status, headers and the (JSON or text) body."""

    plugin_id = "http_request"
    Config = HttpRequestConfig

    async def run(
        self, inputs: dict[str, Any], config: HttpRequestConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Make the call.

        Args:
            inputs: The node's inputs; only used with ``body_from_input``.
            config: See the module documentation.
            ctx: The call's context.

        Returns:
            ``{"status", "headers", "url", "elapsed_ms"}`` plus one of ``"json"``, ``"text"``,
            ``"base64"``.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key (or the bad entry of
                ``ORCHESTRATOR_HTTP_ALLOW``); ``PluginExecutionFailed`` for a connection the
                egress policy refuses, an unexpected, non-retryable status, a too large or
                undecodable body, too many redirects or a redirect to another scheme.
            HttpServerError: 5xx, 408 or 429 after every retry.
            TimeoutError: The last try took longer than ``request_timeout``.
            ConnectionError: The last try could not connect or lost the connection.
        """
        request = _request(inputs, config)
        try:
            policy = EgressPolicy.from_environment()
        except PolicyError as exc:
            raise PluginError(PluginErrorCode.InvalidConfiguration, str(exc)) from None
        async with httpx.AsyncClient(
            transport=GuardedTransport(policy),
            timeout=httpx.Timeout(request.timeout),
            headers={"Accept-Encoding": ACCEPT_ENCODING},  # what _inflate decodes
            follow_redirects=False,  # followed by _send, hop by hop
        ) as client:
            failure: Exception | None = None
            for number in range(request.retries + 1):
                if number:
                    delay = request.backoff * 2 ** (number - 1)
                    ctx.logger.warning(
                        "http_request.retrying",
                        request=request.where,
                        error=str(failure),
                        retry=number,
                        delay=delay,
                    )
                    await asyncio.sleep(delay)
                started = time.monotonic()
                try:
                    async with asyncio.timeout(request.timeout):
                        response = await _send(client, request)
                except TimeoutError:
                    failure = TimeoutError(
                        f"{request.where}: no complete response within {request.timeout:g} s"
                    )
                    continue
                except EgressRefused as exc:
                    raise data_error(
                        f"{request.where}: {exc.explain()}",
                        url=redact_url(request.url),
                        host=exc.host,
                        address=str(exc.address),
                        rule=exc.rule,
                    ) from None
                except httpx.TimeoutException as exc:
                    failure = TimeoutError(f"{request.where}: timed out: {_describe(exc)}")
                    continue
                except httpx.UnsupportedProtocol as exc:  # a redirect to another scheme
                    raise data_error(
                        f"{request.where}: {exc}", url=redact_url(request.url)
                    ) from None
                except httpx.TransportError as exc:
                    failure = ConnectionError(f"{request.where}: {_describe(exc)}")
                    continue
                except _TooManyRedirects:
                    raise data_error(
                        f"{request.where}: more than {MAX_REDIRECTS} redirects",
                        url=redact_url(request.url),
                    ) from None
                except CorruptBody as exc:
                    raise data_error(
                        f"{request.where}: the response body cannot be decoded: {exc}",
                        url=redact_url(request.url),
                    ) from None
                except _TooLarge as exc:
                    raise data_error(
                        f"{request.where}: the response body ({exc.size:,} bytes or more) is "
                        f"larger than max_response_bytes ({request.max_bytes:,} bytes)",
                        url=redact_url(request.url),
                    ) from None
                elapsed_ms = round((time.monotonic() - started) * 1000, 3)
                if request.expected(response.status):
                    ctx.logger.info(
                        "http_request.done",
                        request=request.where,
                        status=response.status,
                        elapsed_ms=elapsed_ms,
                        tries=number + 1,
                    )
                    return _output(response, elapsed_ms)
                summary = _status_summary(request, response)
                if response.status >= 500 or response.status in RETRYABLE_CLIENT_STATUSES:
                    failure = HttpServerError(summary)
                    continue
                raise PluginError(
                    PluginErrorCode.PluginExecutionFailed,
                    summary,
                    {"url": redact_url(request.url), "status": response.status},
                )
        assert failure is not None
        raise failure


http_request_plugin = HttpRequest().as_plugin()


async def _send(client: httpx.AsyncClient, request: _Request) -> _Response:
    """One try: send, following redirects hop by hop (each hop's connection passes the
    egress policy), then read the body of the last answer."""
    url = httpx.URL(request.url)
    if request.query:
        url = url.copy_merge_params(request.query)  # ``params=`` would replace the URL's query
    outgoing = client.build_request(
        request.method,
        url,
        headers=request.headers,
        json=request.body if request.has_body else None,
    )
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.send(outgoing, stream=True)
        # httpx prepares the next hop as it would follow it (method, body and headers).
        if not request.follow_redirects or response.next_request is None:
            return await _read(response, request)
        await response.aclose()
        outgoing = response.next_request
    raise _TooManyRedirects


async def _read(response: httpx.Response, request: _Request) -> _Response:
    """The answer with its body decoded: all of it when the status is expected, a snippet
    otherwise."""
    try:
        wanted = request.expected(response.status_code)
        limit = request.max_bytes if wanted else ERROR_SNIPPET_BYTES
        declared = response.headers.get("content-length", "")
        if (
            wanted
            and request.method != "HEAD"  # a HEAD answer's length is the GET body's
            and declared.isdigit()
            and int(declared) > limit
            and "content-encoding" not in response.headers
        ):
            raise _TooLarge(int(declared))
        content = await _read_body(response, limit, refuse_more=wanted)
    finally:
        await response.aclose()
    return _Response(
        status=response.status_code,
        reason=response.reason_phrase,
        headers=response.headers,
        url=str(response.url),
        content=content,
    )


async def _read_body(response: httpx.Response, limit: int, *, refuse_more: bool) -> bytes:
    """At most ``limit`` decoded bytes; more is :class:`_TooLarge` when ``refuse_more``,
    else cut off. Decoding is incremental, so no more than a step past the limit is held."""
    decoder = BodyDecoder(response.headers.get("content-encoding", ""))
    body = bytearray()

    def full(pieces: Iterator[bytes]) -> bool:
        for piece in pieces:
            body.extend(piece)
            if len(body) > limit:
                if refuse_more:
                    raise _TooLarge(len(body))
                return True
        return False

    async for raw in response.aiter_raw():
        if full(decoder.feed(raw)):
            return bytes(body[:limit])
    full(decoder.finish())
    return bytes(body[:limit])


def _output(response: _Response, elapsed_ms: float) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    output: dict[str, Any] = {
        "status": response.status,
        "headers": headers,
        "url": redact_url(response.url),
        "elapsed_ms": elapsed_ms,
    }
    output.update(decode_body(response.content, response.headers.get("content-type", "")))
    return output


def decode_body(content: bytes, content_type: str) -> dict[str, Any]:
    """A response body as ``{"json": value}``, ``{"text": str}`` or ``{"base64": str}``.

    JSON when the media type is ``application/json`` or ``*+json`` and the body parses as
    strict JSON; otherwise text in the declared charset (UTF-8 by default) when it decodes
    (an empty body, as for ``HEAD``, is ``""``); otherwise base64.
    """
    media_type, _, parameters = content_type.partition(";")
    media_type = media_type.strip().lower()
    charset = "utf-8"
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    try:
        text = content.decode(charset)
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(content).decode("ascii")}
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return {"json": loads_strict(text)}
        except ValueError:
            pass  # declared JSON but is not: hand over the text
    return {"text": text}


def _status_summary(request: _Request, response: _Response) -> str:
    snippet = response.content[:ERROR_SNIPPET_BYTES].decode("utf-8", errors="replace").strip()
    detail = f": {snippet}" if snippet else ""
    reason = f" {response.reason}" if response.reason else ""
    return f"{request.where} answered {response.status}{reason}{detail}"


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --- configuration ----------------------------------------------------------------------------


def _request(inputs: dict[str, Any], config: HttpRequestConfig) -> _Request:
    has_body = False
    body: Any = None
    if config.json is not None:
        body = config.json
        has_body = True
    elif config.body_from_input is not None:
        body_input = config.body_from_input
        if body_input not in inputs:
            available = ", ".join(sorted(inputs)) or "none"
            raise data_error(
                f"input '{body_input}' named by 'body_from_input' is missing (inputs: {available})",
                input=body_input,
            )
        body = inputs[body_input]
        has_body = True
    return _Request(
        url=config.url,
        method=config.method,
        headers=dict(config.headers or {}),
        query=_query(config.query or {}),
        body=body,
        has_body=has_body,
        timeout=config.request_timeout,
        retries=config.retries,
        backoff=config.retry_backoff,
        expect=None if config.expect_status is None else frozenset(config.expect_status),
        max_bytes=config.max_response_bytes,
        follow_redirects=config.follow_redirects,
    )


def _query(query: dict[str, QueryScalar | list[QueryScalar]]) -> dict[str, Any]:
    """The parameters as text (booleans ``true``/``false``), lists kept as lists."""
    texts: dict[str, Any] = {}
    for name, item in query.items():
        values = item if isinstance(item, list) else [item]
        converted = [_query_text(value) for value in values]
        texts[name] = converted if isinstance(item, list) else converted[0]
    return texts


def _query_text(value: QueryScalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
