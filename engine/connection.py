"""Connecting to Temporal: defaults from the environment, the pydantic data converter.

Environment (read when an argument is not given):

``TEMPORAL_ADDRESS``   host:port of the frontend (default ``localhost:7233``)
``TEMPORAL_NAMESPACE`` namespace (default ``default``)
``TEMPORAL_TASK_QUEUE`` task queue of workers and executions (default ``plugin-orchestrator``)
``TEMPORAL_API_KEY``   API key (Temporal Cloud); implies TLS
``TEMPORAL_TLS``       ``true`` to use TLS with the system roots
``TEMPORAL_TLS_CERT`` / ``TEMPORAL_TLS_KEY`` client certificate and key files (mTLS)
``TEMPORAL_TLS_CA``    CA bundle file for the server certificate
``TEMPORAL_TLS_SERVER_NAME`` server name to verify, if it differs from the address

Tracing (``ORCHESTRATOR_TRACING``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, see
:mod:`engine.telemetry`) adds the SDK's tracing interceptor to every client connected here.
"""

from __future__ import annotations

import os
from pathlib import Path

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError, TLSConfig

from engine.contracts import DEFAULT_TASK_QUEUE
from engine.errors import PluginError, PluginErrorCode
from engine.telemetry import client_interceptors

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"


def default_address() -> str:
    return os.environ.get("TEMPORAL_ADDRESS") or DEFAULT_ADDRESS


def default_namespace() -> str:
    return os.environ.get("TEMPORAL_NAMESPACE") or DEFAULT_NAMESPACE


def default_task_queue() -> str:
    return os.environ.get("TEMPORAL_TASK_QUEUE") or DEFAULT_TASK_QUEUE


def tls_from_env() -> TLSConfig | bool:
    """TLS settings from the environment: False, True (system roots) or a TLSConfig."""
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
            client_cert=Path(cert).read_bytes() if cert else None,
            client_private_key=Path(key).read_bytes() if key else None,
            server_root_ca_cert=Path(ca).read_bytes() if ca else None,
            domain=server_name,
        )
    if os.environ.get("TEMPORAL_API_KEY"):
        return True
    return os.environ.get("TEMPORAL_TLS", "").lower() in ("1", "true", "yes")


async def connect(
    target: str | None = None,
    namespace: str | None = None,
    *,
    tls: TLSConfig | bool | None = None,
    api_key: str | None = None,
    runtime: Runtime | None = None,
    interceptors: list[Interceptor] | None = None,
) -> Client:
    """Connect a client that speaks this engine's payloads (pydantic JSON).

    Args:
        runtime: The SDK runtime (e.g. :func:`engine.telemetry.metrics_runtime` for a
            Prometheus endpoint); default: the SDK's default runtime.
        interceptors: Client interceptors (workers inherit them); default: the tracing
            interceptor when tracing is configured (:mod:`engine.telemetry`), else none.

    Raises:
        PluginError: ``ServerUnavailable`` if the server cannot be reached.
    """
    address = target or default_address()
    try:
        return await Client.connect(
            address,
            namespace=namespace or default_namespace(),
            data_converter=pydantic_data_converter,
            tls=tls_from_env() if tls is None else tls,
            api_key=api_key or os.environ.get("TEMPORAL_API_KEY") or None,
            interceptors=client_interceptors() if interceptors is None else interceptors,
            runtime=runtime,
        )
    except (RPCError, RuntimeError, OSError) as exc:
        raise PluginError(
            PluginErrorCode.ServerUnavailable,
            f"cannot connect to Temporal at {address}: {exc}",
        ) from exc


def with_pydantic_converter(client: Client) -> Client:
    """The same connection with this engine's data converter (a no-op if it has it)."""
    if client.data_converter is pydantic_data_converter:
        return client
    config = client.config()
    config["data_converter"] = pydantic_data_converter
    return Client(**config)
