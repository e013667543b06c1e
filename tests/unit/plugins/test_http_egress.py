"""``http_request``'s egress policy: what a definition may make a worker connect to.

Refusals must happen before any connection. Two observers prove it, neither a mock:

* listeners on loopback addresses: a connection completes in the kernel's backlog even
  when nothing accepts it, so a non-blocking ``accept`` afterwards sees any that was made;
* Python's audit hook ``socket.connect``, fired before every connect of this process: the
  tests record every address connected to, and while they run, a connect to an address
  outside the loopback range is stopped (so a broken policy cannot send a packet to
  169.254.169.254 or 10.0.0.1 from this machine: it fails the test instead).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.base.errors import PluginError, PluginErrorCode
from plugins import PluginContext
from plugins.builtin import _egress, http_request_plugin
from plugins.builtin._egress import ALLOW_VARIABLE, EgressPolicy, default_rule
from plugins.builtin.http_request import MAX_REDIRECTS

# -- observers ---------------------------------------------------------------------------------

_WATCHES: list[list[tuple[str, int]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _WATCHES:
        return
    address = args[1]
    if not isinstance(address, tuple):
        return  # a Unix socket
    host, port = str(address[0]), int(address[1])
    _WATCHES[-1].append((host, port))
    if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
        raise ConnectionRefusedError(f"test guard: stopped a connection to {host}:{port}")


sys.addaudithook(_audit)  # hooks cannot be removed; it only acts inside watched_connects()


@contextlib.contextmanager
def watched_connects() -> Iterator[list[tuple[str, int]]]:
    """Every (address, port) this process connects to meanwhile; non-loopback ones are
    stopped before they leave."""
    seen: list[tuple[str, int]] = []
    _WATCHES.append(seen)
    try:
        yield seen
    finally:
        _WATCHES.remove(seen)


class Listener:
    """A TCP socket listening on ``host`` that never accepts: ``connections()`` counts the
    connections made to it."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    def connections(self) -> int:
        count = 0
        while True:
            try:
                connection, _ = self.sock.accept()
            except BlockingIOError:
                return count
            connection.close()
            count += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(name="listener")
def fixture_listener() -> Iterator[Listener]:
    listener = Listener("127.0.0.1")
    yield listener
    listener.close()


@pytest.fixture(name="second_loopback")
def fixture_second_loopback() -> Iterator[Listener]:
    """A listener on 127.0.0.2: loopback too, but not the address the tests allow."""
    listener = Listener("127.0.0.2")
    yield listener
    listener.close()


class Site:
    """A real HTTP server on 127.0.0.1: ``/ok`` answers JSON (with the Host it was asked
    for), ``/to?url=U`` redirects to U, ``/loop`` to itself."""

    def __init__(self) -> None:
        self.hits = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                site.hits += 1
                if self.path == "/loop":
                    self._answer(302, b"", {"Location": "/loop"})
                elif self.path.startswith("/to?url="):
                    self._answer(302, b"", {"Location": self.path.split("=", 1)[1]})
                else:
                    body = json.dumps({"host": self.headers.get("Host")}).encode()
                    self._answer(200, body, {"Content-Type": "application/json"})

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(name="site")
def fixture_site() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


@pytest.fixture(autouse=True)
def no_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the default policy, whatever the environment says."""
    monkeypatch.delenv(ALLOW_VARIABLE, raising=False)


def make_ctx() -> PluginContext:
    return PluginContext(
        execution_id="e",
        workflow_id="w",
        node_id="fetch",
        plugin_id="http_request",
        attempt=1,
        idempotency_key="k",
    )


async def call(config: dict[str, Any]) -> dict[str, Any]:
    plugin = http_request_plugin
    # Short timeouts and no retries: a broken policy fails fast instead of hanging.
    checked = plugin.check_config({"request_timeout": 2, "retries": 0, **config})
    result = await plugin.function({}, checked, make_ctx())  # type: ignore[misc]
    assert isinstance(result, dict)
    return result


async def refusal(url: str) -> PluginError:
    """The error of a call to ``url`` that the policy must refuse, with nothing connected."""
    with watched_connects() as connects:
        try:
            result = await call({"url": url})
        except PluginError as exc:
            error = exc
        else:
            raise AssertionError(f"{url} was fetched: {result}")
    assert connects == [], f"connected to {connects} for {url}"
    assert error.code is PluginErrorCode.PluginExecutionFailed  # terminal: never retried
    assert ALLOW_VARIABLE in error.message
    return error


# -- refused by default ------------------------------------------------------------------------


async def test_loopback_is_refused_before_connecting(listener: Listener) -> None:
    url = f"http://127.0.0.1:{listener.port}/admin"
    error = await refusal(url)
    assert error.message.startswith(f"GET {url}: refused to connect to 127.0.0.1: ")
    assert "the address is loopback (127.0.0.0/8)" in error.message
    assert "can allow it in ORCHESTRATOR_HTTP_ALLOW" in error.message
    assert "e.g. 127.0.0.1)" in error.message
    assert error.details == {
        "url": url,
        "host": "127.0.0.1",
        "address": "127.0.0.1",
        "rule": "loopback (127.0.0.0/8)",
    }
    # By name, and written as IPv6: the same address, the same refusal.
    by_name = await refusal(f"http://localhost:{listener.port}/admin")
    assert "(localhost resolves to it)" in by_name.message
    assert "e.g. 127.0.0.1 or localhost" in by_name.message
    mapped = await refusal(f"http://[::ffff:127.0.0.1]:{listener.port}/admin")
    assert "as 127.0.0.1 inside an IPv6 address" in mapped.message
    unspecified = await refusal(f"http://0.0.0.0:{listener.port}/admin")  # Linux: loopback
    assert "unspecified (0.0.0.0/8" in unspecified.message
    assert listener.connections() == 0


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local (169.254.0.0/16"),
        ("http://[::ffff:169.254.169.254]/latest/", "as 169.254.169.254 inside an IPv6"),
        ("http://[64:ff9b::a9fe:a9fe]/latest/", "as 169.254.169.254 inside an IPv6"),
        ("http://[fe80::1]/", "link-local (fe80::/10)"),
        ("http://10.0.0.1/", "private (RFC 1918, 10.0.0.0/8)"),
        ("http://172.16.5.4:8080/", "private (RFC 1918, 172.16.0.0/12)"),
        ("http://192.168.1.1/", "private (RFC 1918, 192.168.0.0/16)"),
        ("http://100.64.0.1/", "shared address space (RFC 6598"),
        ("http://[fd12:3456::1]/", "private (unique local, fc00::/7)"),
        ("http://[2002:a00:1::1]/", "as 10.0.0.1 inside an IPv6 address"),
        ("http://224.0.0.1/", "multicast (224.0.0.0/4)"),
        ("http://255.255.255.255/", "reserved (240.0.0.0/4"),
        ("http://192.0.2.1/", "not globally reachable"),
        ("http://[::]/", "unspecified (::)"),
    ],
)
async def test_metadata_private_and_reserved_addresses_are_refused(url: str, rule: str) -> None:
    error = await refusal(url)
    assert rule in error.message, error.message


async def test_a_redirect_to_loopback_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch, site: Site, second_loopback: Listener
) -> None:
    monkeypatch.setenv(ALLOW_VARIABLE, "127.0.0.1")  # the first hop's server only
    target = f"http://127.0.0.2:{second_loopback.port}/internal"
    with watched_connects() as connects, pytest.raises(PluginError) as info:
        await call({"url": site.url(f"/to?url={target}")})
    assert info.value.code is PluginErrorCode.PluginExecutionFailed
    assert "refused to connect to 127.0.0.2: the address is loopback" in info.value.message
    assert info.value.details["address"] == "127.0.0.2"
    assert site.hits == 1
    assert second_loopback.connections() == 0
    assert connects == [("127.0.0.1", site.port)]  # the first hop, nothing after

    with watched_connects() as connects, pytest.raises(PluginError) as info:
        await call({"url": site.url("/to?url=http://169.254.169.254/latest/meta-data/")})
    assert "refused to connect to 169.254.169.254" in info.value.message
    assert connects == [("127.0.0.1", site.port)]


async def test_a_redirect_to_another_scheme_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, site: Site
) -> None:
    monkeypatch.setenv(ALLOW_VARIABLE, "127.0.0.1")
    with pytest.raises(PluginError) as info:
        await call({"url": site.url("/to?url=file:///etc/passwd")})
    assert info.value.code is PluginErrorCode.PluginExecutionFailed
    assert "file" in info.value.message


async def test_redirects_are_followed_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch, site: Site
) -> None:
    monkeypatch.setenv(ALLOW_VARIABLE, "127.0.0.1")
    with pytest.raises(PluginError) as info:
        await call({"url": site.url("/loop")})
    assert info.value.code is PluginErrorCode.PluginExecutionFailed
    assert f"more than {MAX_REDIRECTS} redirects" in info.value.message
    assert site.hits == MAX_REDIRECTS + 1


# -- the allow-list ----------------------------------------------------------------------------


async def test_the_allow_list_opens_exactly_what_it_names(
    monkeypatch: pytest.MonkeyPatch, site: Site, second_loopback: Listener
) -> None:
    monkeypatch.setenv(ALLOW_VARIABLE, "127.0.0.1")
    assert (await call({"url": site.url("/ok")}))["status"] == 200
    await refusal(f"http://127.0.0.2:{second_loopback.port}/")
    await refusal("http://169.254.169.254/")

    monkeypatch.setenv(ALLOW_VARIABLE, "10.0.0.0/8, localhost")  # a host name opens by name
    result = await call({"url": f"http://localhost:{site.port}/ok"})
    assert result["json"] == {"host": f"localhost:{site.port}"}
    await refusal(site.url("/ok"))  # 127.0.0.1 by address is not "localhost"

    monkeypatch.setenv(ALLOW_VARIABLE, "127.0.0.0/8")
    assert (await call({"url": site.url("/ok")}))["status"] == 200
    assert second_loopback.connections() == 0


async def test_an_invalid_allow_list_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, listener: Listener
) -> None:
    monkeypatch.setenv(ALLOW_VARIABLE, "127.0.0.1, 10.0.0.0/33")
    with watched_connects() as connects, pytest.raises(PluginError) as info:
        await call({"url": f"http://127.0.0.1:{listener.port}/"})
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert f"{ALLOW_VARIABLE} has the entry '10.0.0.0/33'" in info.value.message
    assert connects == []
    assert listener.connections() == 0


async def test_the_connection_goes_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch, site: Site, second_loopback: Listener
) -> None:
    """DNS rebinding: a name that resolves to an allowed address when checked and to
    another one a moment later. The name is resolved once per connection and the socket
    connects to the checked address itself. (This machine has no DNS server to rebind, so
    the resolver is replaced; the connection is real.)"""
    answers = [[ipaddress.ip_address("127.0.0.1")], [ipaddress.ip_address("127.0.0.2")]]
    asked: list[str] = []

    async def rebinding_resolver(host: str, port: int) -> list[Any]:
        asked.append(host)
        return answers[min(len(asked), 2) - 1]

    monkeypatch.setattr(_egress, "_resolve", rebinding_resolver)
    monkeypatch.setenv(ALLOW_VARIABLE, "127.0.0.1")
    with watched_connects() as connects:
        result = await call({"url": f"http://rebind.test:{site.port}/ok"})
    assert result["json"] == {"host": f"rebind.test:{site.port}"}  # the name, as sent
    assert asked == ["rebind.test"]
    assert connects == [("127.0.0.1", site.port)]
    assert second_loopback.connections() == 0


# -- the policy itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("169.254.169.254", True),
        ("10.255.0.1", True),
        ("172.31.255.255", True),
        ("172.32.0.1", False),
        ("192.168.0.1", True),
        ("100.127.255.255", True),
        ("100.128.0.1", False),
        ("0.0.0.0", True),
        ("8.8.8.8", False),
        ("::1", True),
        ("::", True),
        ("::ffff:10.0.0.1", True),
        ("::ffff:8.8.8.8", False),
        ("::ffff:0:10.0.0.1", True),  # IPv4-translated
        ("::7f00:1", True),  # IPv4-compatible, deprecated
        ("64:ff9b::808:808", False),  # NAT64 of a public address
        ("fe80::1%eth0", True),
        ("fec0::1", True),
        ("ff02::1", True),
        ("2001:db8::1", True),  # documentation
        ("2606:4700:4700::1111", False),
    ],
)
def test_default_rules(address: str, refused: bool) -> None:
    assert (default_rule(ipaddress.ip_address(address)) is not None) is refused


def test_allow_list_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_VARIABLE, " 10.1.0.0/16,[::1] *.svc.cluster.local\tBilling.Internal. ")
    policy = EgressPolicy.from_environment()
    ip = ipaddress.ip_address
    assert policy.refusal("x", ip("10.1.2.3")) is None
    assert policy.refusal("x", ip("::ffff:10.1.2.3")) is None  # the same address in IPv6
    assert policy.refusal("x", ip("10.2.0.1")) is not None
    assert policy.refusal("x", ip("::1")) is None
    assert policy.refusal("db.svc.cluster.local", ip("10.9.9.9")) is None
    assert policy.refusal("svc.cluster.local", ip("10.9.9.9")) is not None  # not the apex
    assert policy.refusal("billing.internal.", ip("192.168.1.1")) is None
    assert policy.refusal("other.internal", ip("192.168.1.1")) is not None
    for bad in ("10.0.0.0/33", "http://x", "[::zz]", "a..b", "*"):
        monkeypatch.setenv(ALLOW_VARIABLE, bad)
        with pytest.raises(_egress.PolicyError, match=ALLOW_VARIABLE):
            EgressPolicy.from_environment()


# -- TLS stays on the host name ----------------------------------------------------------------


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_verifies_and_names_the_host_while_connecting_to_its_address(
    monkeypatch: pytest.MonkeyPatch, site: Site, tmp_path: Path
) -> None:
    """The socket goes to the checked address (127.0.0.1), yet TLS sends the URL's host
    name as SNI and verifies the certificate against it: a certificate for localhost is
    accepted, one for another name is refused."""
    cert, key = _self_signed(tmp_path, "localhost")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    names: list[str | None] = []

    def record_name(_sock: Any, name: str | None, _context: Any) -> None:
        names.append(name)

    server_context.sni_callback = record_name
    site.httpd.socket = server_context.wrap_socket(site.httpd.socket, server_side=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv(ALLOW_VARIABLE, "localhost")

    result = await call({"url": f"https://localhost:{site.port}/ok"})
    assert result["json"] == {"host": f"localhost:{site.port}"}
    assert names == ["localhost"]

    other, _ = _self_signed(tmp_path, "other.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))  # trusts only a certificate for another name
    with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await call({"url": f"https://localhost:{site.port}/ok"})
