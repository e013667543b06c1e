"""Connecting to Temporal: defaults from the environment, the engine's data converter.

Environment (read when an argument is not given):

``TEMPORAL_ADDRESS``   host:port of the frontend (default ``localhost:7233``)
``TEMPORAL_NAMESPACE`` namespace (default ``default``)
``TEMPORAL_TASK_QUEUE`` task queue of workers and executions (default ``plugin-orchestrator``)
``TEMPORAL_API_KEY``   API key (Temporal Cloud); implies TLS
``TEMPORAL_TLS``       ``true`` to use TLS with the system roots
``TEMPORAL_TLS_CERT`` / ``TEMPORAL_TLS_KEY`` client certificate and key files (mTLS)
``TEMPORAL_TLS_CA``    CA bundle file for the server certificate
``TEMPORAL_TLS_SERVER_NAME`` server name to verify, if it differs from the address

Payload encryption (``ORCHESTRATOR_ENCRYPTION_KEYS`` or ``ORCHESTRATOR_ENCRYPTION_KEYS_FILE``,
see :mod:`engine.hosting.codec` and docs/SECURITY.md) is part of the data converter of every client
connected here, so workers, the CLI and the studio all encrypt and decrypt alike.

Tracing (``ORCHESTRATOR_TRACING``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, see
:mod:`engine.temporal.telemetry`) adds the SDK's tracing interceptor to every client connected here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime
from temporalio.service import RPCError, TLSConfig

from engine.base.errors import PluginError, PluginErrorCode
from engine.hosting.codec import (
    KEYS_FILE_VARIABLE,
    KEYS_VARIABLE,
    EnginePayloadConverter,
    codec_from_env,
)
from engine.runtime.contracts import DEFAULT_TASK_QUEUE
from engine.temporal.telemetry import client_interceptors

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
# Pydantic JSON payloads whose converter also explains payloads it cannot open
# (engine.hosting.codec.EnginePayloadConverter): the converter of every client, with or without
# keys.
PLAIN_CONVERTER = dataclasses.replace(
    pydantic_data_converter, payload_converter_class=EnginePayloadConverter
)


def default_address() -> str:
    return os.environ.get("TEMPORAL_ADDRESS") or DEFAULT_ADDRESS


def default_namespace() -> str:
    return os.environ.get("TEMPORAL_NAMESPACE") or DEFAULT_NAMESPACE


def default_task_queue() -> str:
    return os.environ.get("TEMPORAL_TASK_QUEUE") or DEFAULT_TASK_QUEUE


def tls_from_env() -> TLSConfig | bool:
    """TLS settings from the environment: False, True (system roots) or a TLSConfig.

    Raises:
        PluginError: ``InvalidConfiguration`` naming the variable: a certificate without
            its key (or the reverse), or a file that cannot be read.
    """
    cert, key = os.environ.get("TEMPORAL_TLS_CERT"), os.environ.get("TEMPORAL_TLS_KEY")
    ca = os.environ.get("TEMPORAL_TLS_CA")
    server_name = os.environ.get("TEMPORAL_TLS_SERVER_NAME")
    if cert or key or ca or server_name:
        if bool(cert) != bool(key):
            raise PluginError(
                PluginErrorCode.InvalidConfiguration,
                "TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together",
            )
        return TLSConfig(
            client_cert=_read("TEMPORAL_TLS_CERT", cert),
            client_private_key=_read("TEMPORAL_TLS_KEY", key),
            server_root_ca_cert=_read("TEMPORAL_TLS_CA", ca),
            domain=server_name,
        )
    if os.environ.get("TEMPORAL_API_KEY"):
        return True
    return os.environ.get("TEMPORAL_TLS", "").lower() in ("1", "true", "yes")


def _read(variable: str, path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PluginError(
            PluginErrorCode.InvalidConfiguration, f"{variable}: cannot read {path}: {exc}"
        ) from None


# What the SDK's (rustls, tonic) connection errors mean, in the terms of this module's
# environment variables.
_TLS_PROBLEMS = (
    (
        "UnknownIssuer",
        "the server's certificate is not signed by a CA this client trusts; set "
        "TEMPORAL_TLS_CA to the CA that signed it",
    ),
    (
        "NotValidForName",
        "the server's certificate is not valid for the name this client expects (the "
        "address's host, or TEMPORAL_TLS_SERVER_NAME); set TEMPORAL_TLS_SERVER_NAME to a name "
        "the certificate holds",
    ),
    ("Expired", "the server's certificate has expired"),
    (
        "InvalidContentType",
        "the server does not speak TLS at this address, but TLS is on (TEMPORAL_TLS, "
        "TEMPORAL_TLS_* or TEMPORAL_API_KEY)",
    ),
    (
        "CertificateRequired",
        "the server requires a client certificate (mTLS); set TEMPORAL_TLS_CERT and "
        "TEMPORAL_TLS_KEY",
    ),
)


# How the SDK reports a server that hangs up after the TLS handshake (it depends on when).
_CLOSED = ("UnexpectedEof", "BrokenPipe", "connection closed", "ConnectionReset")


def connection_problem(error: str, tls: TLSConfig | bool) -> str | None:
    """What a failed connection most likely means, or None when it says nothing known."""
    for marker, problem in _TLS_PROBLEMS:
        if marker in error:
            return problem
    closed = any(marker in error for marker in _CLOSED)
    if closed and isinstance(tls, TLSConfig) and tls.client_cert is None:
        return (
            "the server closed the TLS connection: it most likely requires a client "
            "certificate (mTLS); set TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY"
        )
    if closed and isinstance(tls, TLSConfig):
        return (
            "the server closed the TLS connection: it most likely does not accept the client "
            "certificate in TEMPORAL_TLS_CERT (not signed by a CA it trusts, or expired)"
        )
    if closed and tls is True:
        return "the server closed the TLS connection (does it require a client certificate?)"
    if closed:
        return (
            "the server closed the connection; if it requires TLS, set TEMPORAL_TLS=true "
            "(or TEMPORAL_TLS_CA and the other TEMPORAL_TLS_* files)"
        )
    return None


def data_converter() -> DataConverter:
    """This engine's data converter: pydantic JSON payloads and, when the environment
    configures keys, the AES-GCM codec, with failure messages and stack traces moved into
    the (encrypted) encoded attributes, since they often quote the data that failed. With
    or without keys, payloads that cannot be opened fail with a clear error
    (:class:`~engine.hosting.codec.EnginePayloadConverter`).

    Raises:
        PluginError: ``InvalidConfiguration`` naming the variable with bad key material.
    """
    codec = codec_from_env()
    if codec is None:
        return PLAIN_CONVERTER
    return dataclasses.replace(
        PLAIN_CONVERTER,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def encryption_configured() -> bool:
    """True if the environment asks for payload encryption (valid or not)."""
    return bool(
        os.environ.get(KEYS_VARIABLE, "").strip() or os.environ.get(KEYS_FILE_VARIABLE, "").strip()
    )


async def connect(
    target: str | None = None,
    namespace: str | None = None,
    *,
    tls: TLSConfig | bool | None = None,
    api_key: str | None = None,
    runtime: Runtime | None = None,
    interceptors: list[Interceptor] | None = None,
) -> Client:
    """Connect a client that speaks this engine's payloads (:func:`data_converter`).

    Args:
        runtime: The SDK runtime (e.g. :func:`engine.temporal.telemetry.metrics_runtime` for a
            Prometheus endpoint); default: the SDK's default runtime.
        interceptors: Client interceptors (workers inherit them); default: the tracing
            interceptor when tracing is configured (:mod:`engine.temporal.telemetry`), else none.

    Raises:
        PluginError: ``ServerUnavailable`` if the server cannot be reached, saying what a
            TLS failure most likely means (:func:`connection_problem`);
            ``InvalidConfiguration`` for bad encryption keys or TLS files.
    """
    address = target or default_address()
    converter = data_converter()
    tls = tls_from_env() if tls is None else tls
    try:
        return await Client.connect(
            address,
            namespace=namespace or default_namespace(),
            data_converter=converter,
            tls=tls,
            api_key=api_key or os.environ.get("TEMPORAL_API_KEY") or None,
            interceptors=client_interceptors() if interceptors is None else interceptors,
            runtime=runtime,
        )
    except (RPCError, RuntimeError, OSError) as exc:
        problem = connection_problem(str(exc), tls)
        explained = f"{problem} ({exc})" if problem else str(exc)
        raise PluginError(
            PluginErrorCode.ServerUnavailable,
            f"cannot connect to Temporal at {address}: {explained}",
        ) from exc


def with_pydantic_converter(client: Client) -> Client:
    """The same connection with this engine's data converter.

    A client from :func:`connect` is returned as is. Any other client gets the engine's
    pydantic JSON payloads; it keeps a payload codec of its own, and one without gets the
    configured encryption (see :func:`data_converter`), so a hand-made client cannot
    silently write plaintext next to encrypting workers.
    """
    current = client.data_converter
    engine_converter = EnginePayloadConverter
    if current.payload_converter_class is engine_converter and (
        current.payload_codec is not None or not encryption_configured()
    ):
        return client
    if current.payload_codec is None:
        converter = data_converter()
    else:
        converter = dataclasses.replace(current, payload_converter_class=engine_converter)
    config = client.config()
    config["data_converter"] = converter
    return Client(**config)
