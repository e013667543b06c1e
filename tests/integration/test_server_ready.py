"""A server is ready when a client can use it, not when its port opens (issue 11, item 12).

The dev server opens its port seconds before its frontend serves ("Frontend is not healthy
yet"); a plain TCP listener stands in for a port that is open but serves nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from engine import PluginError, PluginErrorCode
from engine.hosting import embedded
from engine.hosting.devserver import DevServer, free_port, wait_until_ready

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(name="silent_port", loop_scope="session")
async def fixture_silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for writer in held:
            writer.close()


async def test_an_open_port_is_not_a_ready_server(silent_port: int) -> None:
    with pytest.raises(PluginError) as raised:
        await wait_until_ready(f"127.0.0.1:{silent_port}", timeout=2)
    assert raised.value.code is PluginErrorCode.ServerUnavailable
    assert f"127.0.0.1:{silent_port} is not ready (namespace 'default')" in raised.value.message


async def test_ensure_server_waits_for_readiness_not_the_port(
    silent_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``orchestrator run`` and the sync facade do when the embedded port is taken by
    a server still starting (or by something else): wait for it, then say what is wrong."""
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.setenv(embedded.ENV_EMBEDDED_PORT, str(silent_port))
    monkeypatch.setattr(embedded, "READY_TIMEOUT", 2.0)
    with pytest.raises(PluginError) as raised:
        await embedded.ensure_server(None, tmp_path)
    assert raised.value.code is PluginErrorCode.ServerUnavailable
    assert f"127.0.0.1:{silent_port} is not ready" in raised.value.message


async def test_dev_server_start_returns_a_ready_server(tmp_path: Path) -> None:
    server = DevServer(tmp_path / "server", port=free_port(), ui_port=0).start()
    try:
        # No retry: the first calls after start must succeed.
        client = await Client.connect(server.address, lazy=True)
        assert await client.service_client.check_health(timeout=timedelta(seconds=5))
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default"), timeout=timedelta(seconds=5)
        )
        assert described.namespace_info.name == "default"
    finally:
        server.stop()
