"""Payload encryption against a real dev server: nothing readable reaches its database, and
key rotation keeps old runs readable.

The server is this module's own (its SQLite file holds only these tests' runs). The scan
reads the raw bytes of the database file and its write-ahead log (old page images and freed
pages included) and, through SQLite, every stored value (values spread over overflow pages
are joined there). A control run with encryption off shows the scan finds the markers.
"""

from __future__ import annotations

import base64
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from engine import (
    AdvancedPluginOrchestrator,
    PluginError,
    PluginErrorCode,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
)
from engine.hosting.codec import ENCODING, KEY_ID_METADATA, KEYS_FILE_VARIABLE, KEYS_VARIABLE
from engine.hosting.connection import connect, with_pydantic_converter
from engine.hosting.devserver import DevServer, free_port
from engine.hosting.worker import create_worker
from plugins import PluginContext, PluginRegistry
from tests.helpers.builders import edge, node, workflow
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.integration

K1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
K2 = "k2:" + base64.b64encode(bytes(range(100, 132))).decode()
Status = WorkflowExecutionStatus


@pytest.fixture(name="server", scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A server of its own (start waits until it is ready:
    engine.hosting.devserver.wait_until_ready)."""
    server = DevServer(tmp_path_factory.mktemp("temporal-security"), port=free_port(), ui_port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="keys")
def fixture_keys(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The encryption variables, cleared first; tests set them with ``keys.setenv``."""
    monkeypatch.delenv(KEYS_VARIABLE, raising=False)
    monkeypatch.delenv(KEYS_FILE_VARIABLE, raising=False)
    return monkeypatch


@pytest.fixture(name="plugins")
def fixture_plugins(registry: PluginRegistry) -> PluginRegistry:
    """The test plugins plus two that produce text found nowhere in their definition (they
    reverse their configuration), so a marker in the database can only come from an output
    or a failure."""

    @registry.plugin("reveal")
    async def reveal(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        return {"revealed": config["hidden"][::-1], "inputs": inputs}

    @registry.plugin("reveal_failure")
    async def reveal_failure(
        inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
    ) -> dict[str, Any]:
        raise ValueError(f"cannot process {config['hidden'][::-1]}")

    return registry


@contextlib.asynccontextmanager
async def engine(
    server: DevServer, plugins: PluginRegistry, task_queue: str
) -> AsyncIterator[AdvancedPluginOrchestrator]:
    """A client (with the keys the environment has now), a worker and an orchestrator."""
    client = await connect(server.address)
    worker = create_worker(
        client, task_queue=task_queue, plugins=plugins, max_cached_workflows=0, graceful_shutdown=5
    )
    async with worker:
        yield AdvancedPluginOrchestrator(client, task_queue=task_queue, query_timeout=5.0)


@dataclass
class Markers:
    """Strings that appear only in a run's input, a node's output, a failure message and
    the definition's name (which Temporal gets as the execution's summary)."""

    input: str
    output: str
    failure: str
    name: str

    @classmethod
    def new(cls) -> Markers:
        tag = uuid.uuid4().hex
        return cls(f"input-{tag}", f"output-{tag}", f"failure-{tag}", f"name-{tag}")

    def all(self) -> dict[str, bytes]:
        return {kind: text.encode() for kind, text in vars(self).items()}


async def run_marked(
    server: DevServer, plugins: PluginRegistry, markers: Markers
) -> tuple[AdvancedPluginOrchestrator, str]:
    """Run reveal -> reveal_failure with ``markers``; check the client reads them back."""
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    definition = workflow(
        f"secrets-{uuid.uuid4().hex[:8]}",
        [
            node("reveal", "reveal", hidden=markers.output[::-1]),
            node("boom", "reveal_failure", hidden=markers.failure[::-1], retry={"max_attempts": 1}),
        ],
        [edge("reveal", "boom")],
        mode=WorkflowExecutionMode.Sequential,
    )
    definition.name = markers.name
    async with engine(server, plugins, task_queue) as orch:
        await orch.register_workflow(definition)
        execution_id = await orch.execute_workflow(
            definition.workflow_id, {"secret": markers.input}
        )
        context = await orch.wait_for_completion(execution_id, 30)
    assert context.status is Status.Failed
    assert markers.failure in " ".join(context.error_messages)
    reveal_state = context.node_states["reveal"]
    assert reveal_state["result"]["revealed"] == markers.output
    assert reveal_state["result"]["inputs"] == {"secret": markers.input}
    return orch, execution_id


def raw_bytes(server: DevServer) -> bytes:
    """The database file and its write-ahead log, byte for byte."""
    files = sorted(server.data_dir.glob(f"{server.db_file.name}*"))
    assert server.db_file in files
    return b"".join(path.read_bytes() for path in files)


def stored_values(server: DevServer) -> bytes:
    """Every text and blob value of every table, as SQLite reads it."""
    chunks: list[bytes] = []
    with contextlib.closing(sqlite3.connect(f"{server.db_file.as_uri()}?mode=ro", uri=True)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # table names come from SQLite
                for value in row:
                    if isinstance(value, bytes):
                        chunks.append(value)
                    elif isinstance(value, str):
                        chunks.append(value.encode())
    return b"\n".join(chunks)


def found(server: DevServer, markers: Markers) -> dict[str, list[str]]:
    """Where each marker occurs: ``raw`` file bytes and/or ``stored`` values."""
    raw, stored = raw_bytes(server), stored_values(server)
    return {
        kind: [where for where, data in (("raw", raw), ("stored", stored)) if marker in data]
        for kind, marker in markers.all().items()
    }


async def start_payload(client: Client, execution_id: str) -> Any:
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(execution_id)
    async for event in handle.fetch_history_events(page_size=1):
        return event.workflow_execution_started_event_attributes.input.payloads[0]
    raise AssertionError(f"no history for {execution_id}")


async def test_control_without_encryption_the_scan_finds_every_marker(
    server: DevServer, plugins: PluginRegistry, keys: pytest.MonkeyPatch
) -> None:
    markers = Markers.new()
    await run_marked(server, plugins, markers)
    where = found(server, markers)
    assert where == {kind: ["raw", "stored"] for kind in markers.all()}, where


async def test_with_encryption_nothing_readable_reaches_the_database(
    server: DevServer, plugins: PluginRegistry, keys: pytest.MonkeyPatch
) -> None:
    keys.setenv(KEYS_VARIABLE, K1)
    markers = Markers.new()
    orch, execution_id = await run_marked(server, plugins, markers)
    where = found(server, markers)
    assert where == {kind: [] for kind in markers.all()}, where

    payload = await start_payload(orch.client, execution_id)
    assert payload.metadata["encoding"] == ENCODING
    assert payload.metadata[KEY_ID_METADATA] == b"k1"
    description = await orch.client.get_workflow_handle(execution_id).describe()
    memo = description.raw_description.workflow_execution_info.memo.fields
    assert memo
    assert {field.metadata["encoding"] for field in memo.values()} == {ENCODING}


async def test_a_retrying_node_shows_its_decrypted_last_error(
    server: DevServer, plugins: PluginRegistry, keys: pytest.MonkeyPatch
) -> None:
    keys.setenv(KEYS_VARIABLE, K1)
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    definition = workflow(
        f"retrying-{uuid.uuid4().hex[:8]}",
        [node("flaky", "flaky", retry={"max_attempts": 2, "initial_interval": 3})],
    )
    async with engine(server, plugins, task_queue) as orch:
        await orch.register_workflow(definition)
        execution_id = await orch.execute_workflow(definition.workflow_id)
        state = await eventually(
            lambda: orch.get_node_status(execution_id, "flaky"), lambda s: "last_error" in s
        )
        assert state["last_error"] == "attempt 1 failed"
        assert (await orch.wait_for_completion(execution_id, 30)).status is Status.Completed


async def test_key_rotation_keeps_old_runs_readable(
    server: DevServer, plugins: PluginRegistry, keys: pytest.MonkeyPatch
) -> None:
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    definition = workflow(
        f"rotation-{uuid.uuid4().hex[:8]}", [node("a", "echo", emit={"answer": 42})]
    )
    keys.setenv(KEYS_VARIABLE, K1)
    async with engine(server, plugins, task_queue) as orch:
        await orch.register_workflow(definition)
        old = await orch.execute_workflow(definition.workflow_id, {"run": "old"})
        assert (await orch.wait_for_completion(old, 30)).status is Status.Completed

    keys.setenv(KEYS_VARIABLE, f"{K2},{K1}")  # rotate: k2 is current, k1 still decrypts
    async with engine(server, plugins, task_queue) as orch:
        context = await orch.get_execution_status(old)
        assert context.status is Status.Completed
        assert context.execution_data["results"]["a"]["answer"] == 42
        assert (await orch.get_execution_definition(old)).workflow_id == definition.workflow_id
        new = await orch.execute_workflow(definition.workflow_id, {"run": "new"})
        assert (await orch.wait_for_completion(new, 30)).status is Status.Completed
        assert (await start_payload(orch.client, old)).metadata[KEY_ID_METADATA] == b"k1"
        assert (await start_payload(orch.client, new)).metadata[KEY_ID_METADATA] == b"k2"

    keys.setenv(KEYS_VARIABLE, K2)  # k1 retired too early: old runs fail clearly
    orch = AdvancedPluginOrchestrator(await connect(server.address), task_queue=task_queue)
    assert (await orch.get_execution_status(new)).status is Status.Completed
    for read in (orch.get_execution_status, orch.get_execution_definition):
        with pytest.raises(PluginError) as caught:
            await read(old)
        assert caught.value.code is PluginErrorCode.InvalidConfiguration
        assert "encrypted with key 'k1', which this process does not have" in caught.value.message


async def test_hand_made_clients_get_the_codec_and_bad_keys_fail_before_connecting(
    server: DevServer, keys: pytest.MonkeyPatch
) -> None:
    keys.setenv(KEYS_VARIABLE, K1)
    plain = await Client.connect(server.address)
    assert with_pydantic_converter(plain).data_converter.payload_codec is not None
    keys.setenv(KEYS_VARIABLE, "k1:not-a-key")
    with pytest.raises(PluginError) as caught:
        await connect(server.address)
    assert caught.value.code is PluginErrorCode.InvalidConfiguration
    assert caught.value.message.startswith(KEYS_VARIABLE)
