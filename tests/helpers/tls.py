"""A test CA and a TLS-terminating loopback proxy in front of the plain dev server.

The proxy speaks TLS (ALPN ``h2``) to clients, optionally requires a client certificate
signed by its CA (mTLS), and forwards the decrypted bytes to the dev server's plain port. It
also reads the HTTP/2 header blocks clients send (HPACK), so a test can see the metadata a
client attached (e.g. ``authorization`` for API keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import struct
from dataclasses import dataclass, field
from pathlib import Path

import hpack
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _CONTINUATION = 0x1, 0x9
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20


@dataclass
class Issued:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


class TestCA:
    """A certificate authority of its own (EC P-256) that issues server and client certs."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
        self._subject = subject
        self.certificate = (
            _builder(subject, subject, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert = directory / f"{name}-ca.pem"
        self.cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue_server(self, host_name: str) -> Issued:
        """A server certificate for ``host_name`` (a DNS name) and 127.0.0.1."""
        names: list[x509.GeneralName] = [
            x509.DNSName(host_name),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        return self._issue(f"server-{host_name}", names, ExtendedKeyUsageOID.SERVER_AUTH, host_name)

    def issue_client(self, name: str) -> Issued:
        """A client certificate (for mTLS)."""
        return self._issue(f"client-{name}", [], ExtendedKeyUsageOID.CLIENT_AUTH, name)

    def _issue(
        self, file_name: str, names: list[x509.GeneralName], usage: x509.ObjectIdentifier, cn: str
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = _builder(subject, self._subject, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        issued = Issued(
            self.directory / f"{self.name}-{file_name}.pem",
            self.directory / f"{self.name}-{file_name}-key.pem",
        )
        issued.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


@dataclass
class TlsProxy:
    """TLS on ``port`` (127.0.0.1), plain TCP to ``upstream``; see the module docstring."""

    upstream: str
    server: Issued
    client_ca: Path | None = None  # set: a client certificate signed by it is required
    port: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # handshakes that failed, and why
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> TlsProxy:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server.cert, self.server.key)
        context.set_alpn_protocols(["h2"])
        if self.client_ca is not None:
            context.load_verify_locations(self.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=context, ssl_handshake_timeout=10
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def authorization(self) -> set[str]:
        """Every ``authorization`` header value clients sent."""
        return {value for name, value in self.headers if name == "authorization"}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        host, port = self.upstream.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(
                self._client_to_server(reader, up_writer), _pipe(up_reader, writer)
            )
        finally:
            self._tasks.discard(task)
            for stream in (writer, up_writer):
                stream.close()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward everything, reading the header blocks on the way."""
        frames = _HeaderReader(self.headers)
        try:
            while data := await reader.read(65536):
                frames.feed(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError) as exc:
            self.refused.append(repr(exc))
        finally:
            with contextlib.suppress(Exception):
                writer.write_eof()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class _HeaderReader:
    """Decodes the HEADERS (+ CONTINUATION) frames of one client's HTTP/2 byte stream."""

    def __init__(self, into: list[tuple[str, str]]) -> None:
        self._into = into
        self._buffer = b""
        self._preface_seen = False
        self._block = b""
        self._decoder = hpack.Decoder()

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if not self._preface_seen:
            if len(self._buffer) < len(_PREFACE):
                return
            self._buffer = self._buffer[len(_PREFACE) :]
            self._preface_seen = True
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                return
            kind, flags = self._buffer[3], self._buffer[4]
            payload = self._buffer[9 : 9 + length]
            self._buffer = self._buffer[9 + length :]
            if kind == _HEADERS:
                self._block = _header_fragment(payload, flags)
            elif kind == _CONTINUATION:
                self._block += payload
            else:
                continue
            if flags & _END_HEADERS:
                for name, value in self._decoder.decode(self._block):
                    self._into.append((str(name), str(value)))
                self._block = b""


def _header_fragment(payload: bytes, flags: int) -> bytes:
    padding = 0
    if flags & _PADDED:
        padding = payload[0]
        payload = payload[1:]
    if flags & _PRIORITY:
        struct.unpack(">IB", payload[:5])  # stream dependency and weight: skipped
        payload = payload[5:]
    return payload[: len(payload) - padding] if padding else payload
