"""Fixtures of the chaos suite: a harness per test (on the session's server, or on a server
of its own for tests that kill the server) and the seeded replayer processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from engine.hosting.devserver import DevServer, free_port
from tests.chaos.harness import SHORT_HISTORY, Harness
from tests.chaos.replay import SeededReplayers
from tests.helpers.servers import configured_server


@pytest_asyncio.fixture(name="replayers", loop_scope="session", scope="session")
async def fixture_replayers(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SeededReplayers]:
    async with SeededReplayers(tmp_path_factory.mktemp("replayers")) as replayers:
        yield replayers


@pytest_asyncio.fixture(name="harness", loop_scope="session")
async def fixture_harness(
    dev_server: DevServer, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Harness]:
    """A harness on the session's server (which it never restarts)."""
    harness = Harness(dev_server, tmp_path, request.node.name[5:30])
    await harness.connect()
    try:
        yield harness
    finally:
        await harness.close()


@pytest_asyncio.fixture(name="own_harness", loop_scope="session")
async def fixture_own_harness(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Harness]:
    """A harness on a server of its own, which the scenario may kill and restart."""
    server = DevServer(tmp_path / "server", port=free_port(), ui_port=0).start()
    harness = Harness(server, tmp_path, request.node.name[5:30])
    try:
        await harness.connect()
        yield harness
    finally:
        await harness.close()
        server.kill()


@pytest.fixture(name="short_history_server", scope="session")
def fixture_short_history_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A server that suggests continue-as-new after 40 history events."""
    with configured_server(tmp_path_factory.mktemp("temporal-short"), **SHORT_HISTORY) as server:
        yield server


@pytest_asyncio.fixture(name="short_harness", loop_scope="session")
async def fixture_short_harness(
    short_history_server: DevServer, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Harness]:
    """A harness on the short-history server (never restarted)."""
    harness = Harness(short_history_server, tmp_path, request.node.name[5:30], short_history=True)
    await harness.connect()
    try:
        yield harness
    finally:
        await harness.close()
