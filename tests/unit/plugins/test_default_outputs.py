"""What the file plugins do with nothing configured (the spec's Quick Start), and the small
conveniences that let the examples run from a fresh clone: ``data_sink`` without a path,
``data_source`` without records, a monitor that creates its zone, a SQLite file's directory.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from plugins import PluginContext
from plugins.builtin import data_sink_plugin, data_source_stream
from plugins.builtin.data_sink import execution_directory
from plugins.builtin.database_writer import database_writer_plugin, dispose_engines
from plugins.builtin.file_system_monitor import open_file_system_monitor
from tests.helpers.plugin_config import call


def ctx(execution_id: str = "quickstart/run-1a2b", node_id: str = "output") -> PluginContext:
    return PluginContext(
        execution_id=execution_id,
        workflow_id="quickstart",
        node_id=node_id,
        plugin_id="p",
        attempt=1,
        idempotency_key="k",
    )


@pytest.fixture(name="data_dir")
def fixture_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", str(tmp_path / "data"))
    return Path(os.path.realpath(tmp_path / "data"))


def test_sink_without_path_writes_under_the_data_directory_by_execution(data_dir: Path) -> None:
    result = call(data_sink_plugin, {"records": [{"a": 1}]}, {}, ctx())
    expected = data_dir / "outputs" / "quickstart_run-1a2b" / "output.jsonl"
    assert result["path"] == str(expected)
    assert expected.read_text() == '{"a": 1}\n'
    as_csv = call(data_sink_plugin, {"records": [{"a": 1}]}, {"format": "csv"}, ctx())
    assert as_csv["path"] == str(expected.with_suffix(".csv"))


def test_sink_without_path_appends_a_stream_under_the_data_directory(data_dir: Path) -> None:
    stream = ctx()
    for batch, items in enumerate(([{"n": 1}], [{"n": 2}])):
        stream.stream_batch = batch
        result = call(data_sink_plugin, {"process": items}, {}, stream)
    expected = data_dir / "outputs" / "quickstart_run-1a2b" / "output.jsonl"
    assert result["path"] == str(expected)
    assert expected.read_text() == '{"n": 1}\n{"n": 2}\n'


def test_execution_directories_are_one_safe_name() -> None:
    assert execution_directory("quickstart/run-1a2b") == "quickstart_run-1a2b"
    assert execution_directory("wf/run-1/map/0") == "wf_run-1_map_0"
    # Ids a Temporal principal could choose: never hidden, never '.' or '..', never a path.
    assert execution_directory("..") == "_.."
    assert execution_directory(".") == "_."
    assert execution_directory("../../etc") == "_.._.._etc"
    long_a, long_b = "w/" + "a" * 300, "w/" + "a" * 299 + "b"
    assert len(execution_directory(long_a)) == 200
    assert execution_directory(long_a) != execution_directory(long_b)


async def test_data_source_with_nothing_configured_emits_one_empty_record() -> None:
    assert await _drain({}) == [{}]
    assert await _drain({"records": []}) == []


async def _drain(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item the ``data_source`` source gives with ``config``, until it is exhausted."""
    source = await data_source_stream.open(config, None, ctx("input"))
    values: list[dict[str, Any]] = []
    try:
        while not source.exhausted:
            values += [item.value for item in await source.read(10, 1.0)]
    finally:
        await source.close()
    return values


async def test_monitor_creates_its_zone_when_asked(tmp_path: Path) -> None:
    zone = tmp_path / "drop-zone" / "incoming"  # neither exists
    config = {"watch_path": str(zone), "create": True, "settle_seconds": 0, "poll_interval": 0.05}
    source = await open_file_system_monitor.open(config, None, ctx("watch"))
    try:
        assert zone.is_dir()
        (zone / "a.csv").write_text("x\n1\n")
        [item] = await source.read(10, 5.0)
        assert item.value["path"] == str(zone / "a.csv")
    finally:
        await source.close()


def test_database_writer_creates_the_directory_of_its_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "new" / "dir" / "out.db"
    config = {"url": f"sqlite:///{database}", "table": "t", "key": "id"}
    try:
        result = call(database_writer_plugin, {"records": [{"id": 1}]}, config, ctx())
    finally:
        dispose_engines()
    assert result == {"written": 1, "table": "t"}
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT id FROM t").fetchall() == [(1,)]
