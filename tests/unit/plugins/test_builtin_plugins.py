"""The built-in plugins, called directly on real files."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from engine.base.errors import PluginError, PluginErrorCode
from plugins import Plugin, PluginContext, PluginRegistry, SourceSpec
from plugins.builtin import (
    BUILTIN_PLUGINS,
    csv_processor_plugin,
    data_processor_plugin,
    data_sink_plugin,
    data_source_plugin,
    error_handler_plugin,
    file_validator_plugin,
)
from tests.helpers.plugin_config import call, names_key

PEOPLE = [
    {"name": "ann", "age": 31, "city": "Utrecht"},
    {"name": "bob", "age": 25, "city": "Delft"},
    {"name": "cid", "age": 47, "city": "Leiden"},
]


def make_ctx(node_id: str = "n") -> PluginContext:
    return PluginContext(
        execution_id="e",
        workflow_id="w",
        node_id=node_id,
        plugin_id="p",
        attempt=1,
        idempotency_key="k",
    )


def run(plugin: Plugin, inputs: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    # As the engine calls it: the configuration checked by the plugin's model first.
    result = plugin.function(inputs, plugin.check_config(config), make_ctx())
    assert isinstance(result, dict)
    # Every output must be strict JSON (no NaN, no non-string keys, no custom objects).
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    return result


def config_error(plugin: Plugin, inputs: dict[str, Any], config: dict[str, Any], key: str) -> str:
    with pytest.raises(PluginError) as info:
        call(plugin, inputs, config, make_ctx())
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert names_key(info.value.message, key), info.value.message
    return info.value.message


def data_error(plugin: Plugin, inputs: dict[str, Any], config: dict[str, Any]) -> str:
    with pytest.raises(PluginError) as info:
        call(plugin, inputs, config, make_ctx())
    assert info.value.code is PluginErrorCode.PluginExecutionFailed
    return info.value.message


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def files_in(directory: Path) -> list[str]:
    return sorted(item.name for item in directory.iterdir())


# --- package --------------------------------------------------------------------------------


def test_builtin_plugins_are_listed_in_order() -> None:
    assert [item.plugin_id for item in BUILTIN_PLUGINS] == [
        "data_source",
        "data_source",  # also a source, for the long-running modes
        "data_processor",
        "data_sink",
        "file_validator",
        "csv_processor",
        "error_handler",
        "data_filter",
        "data_transformer",
        "database_writer",
        "http_request",
        "json_transform",
        "file_system_monitor",
        "jsonl_source",
        "mqtt_subscriber",
        "redis_stream_source",
        "nats_jetstream_source",
        "kafka_consumer",
    ]
    functions = [item for item in BUILTIN_PLUGINS if isinstance(item, Plugin)]
    sources = [item for item in BUILTIN_PLUGINS if isinstance(item, SourceSpec)]
    assert len(functions) + len(sources) == len(BUILTIN_PLUGINS)
    # Synchronous (run in a thread) but for http_request, which awaits the network.
    assert [item.plugin_id for item in functions if item.is_async] == ["http_request"]
    assert all(item.description for item in functions)
    assert all(item.description for item in sources)
    registry = PluginRegistry.with_builtins()
    assert len(registry) == 17  # ids; data_source names a function and a source
    assert all(registry.get_source(item.plugin_id) is item for item in sources)


# --- data_source ----------------------------------------------------------------------------


def test_source_reads_json_list(tmp_path: Path) -> None:
    path = write(tmp_path / "people.json", json.dumps(PEOPLE))
    assert run(data_source_plugin, {}, {"path": str(path)}) == {
        "records": PEOPLE,
        "count": 3,
        "source": str(path),
    }


def test_source_reads_json_records_object_with_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "people.json", json.dumps({"records": PEOPLE}))
    result = run(data_source_plugin, {}, {"path": str(path), "limit": 2})
    assert result == {"records": PEOPLE[:2], "count": 2, "source": str(path)}


def test_source_reads_jsonl_skipping_blank_lines(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps(record) for record in PEOPLE)
    path = write(tmp_path / "people.jsonl", lines + "\n\n")
    assert run(data_source_plugin, {}, {"path": str(path)})["records"] == PEOPLE


def test_source_reads_csv_as_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv", "name,age\nann,31\n\nbob,25\ncid\n")
    result = run(data_source_plugin, {}, {"path": str(path)})
    assert result == {
        "records": [
            {"name": "ann", "age": "31"},
            {"name": "bob", "age": "25"},
            {"name": "cid", "age": None},
        ],
        "count": 3,
        "source": str(path),
    }


def test_source_format_overrides_extension_and_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "people.txt", "name;age\nann;31\n")
    result = run(data_source_plugin, {}, {"path": str(path), "format": "csv", "delimiter": ";"})
    assert result["records"] == [{"name": "ann", "age": "31"}]


def test_source_inline_records() -> None:
    assert run(data_source_plugin, {"ignored": 1}, {"records": PEOPLE, "limit": 0}) == {
        "records": [],
        "count": 0,
        "source": "inline",
    }
    assert run(data_source_plugin, {}, {"records": PEOPLE})["records"] == PEOPLE


def test_source_from_inputs() -> None:
    assert run(data_source_plugin, {"records": PEOPLE}, {}) == {
        "records": PEOPLE,
        "count": 3,
        "source": "input",
    }
    assert run(data_source_plugin, {"file": "a.csv", "n": 2}, {}) == {
        "records": [{"file": "a.csv", "n": 2}],
        "count": 1,
        "source": "input",
    }
    # Nothing configured and no inputs: one empty record, so the pipeline runs once.
    assert run(data_source_plugin, {}, {})["records"] == [{}]


def test_source_missing_file_propagates(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        call(data_source_plugin, {}, {"path": str(tmp_path / "nope.json")}, make_ctx())


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"path": 3}, "path"),
        ({"path": ""}, "path"),
        ({"path": "data.xml"}, "path"),
        ({"path": "data.json", "format": "xml"}, "format"),
        ({"records": "abc"}, "records"),
        ({"records": [1, 2]}, "records"),
        ({"records": [], "limit": -1}, "limit"),
        ({"records": [], "limit": "5"}, "limit"),
        ({"records": [], "limit": True}, "limit"),
        ({"path": "a.csv", "delimiter": ";;"}, "delimiter"),
    ],
)
def test_source_config_errors(config: dict[str, Any], key: str) -> None:
    config_error(data_source_plugin, {}, config, key)


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("nan.json", '[{"x": NaN}]', "NaN is not valid JSON"),
        ("scalar.json", "42", "holds integer"),
        ("items.json", '[{"a": 1}, 2]', "record 1"),
        ("bad.jsonl", '{"a": 1}\n[1]\n', "line 2 is array"),
        ("wide.csv", "a,b\n1,2,3\n", "line 2 has 3 fields"),
        ("dup.csv", "a,a\n1,2\n", "column 'a' twice"),
        ("quote.csv", 'a,b\n"1,2\n', "malformed CSV"),
    ],
)
def test_source_malformed_files(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = write(tmp_path / name, text)
    message = data_error(data_source_plugin, {}, {"path": str(path)})
    assert fragment in message


def test_source_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"name\nok\nJos\xe9\n")
    assert "not valid UTF-8 (line 3)" in data_error(data_source_plugin, {}, {"path": str(path)})


def test_source_rejects_non_object_input_records() -> None:
    assert "record 1" in data_error(data_source_plugin, {"records": [{}, 5]}, {})
    assert "must be a list" in data_error(data_source_plugin, {"records": "x"}, {})


# --- data_processor -------------------------------------------------------------------------


def test_processor_passes_records_through_without_config() -> None:
    result = run(data_processor_plugin, {"source": {"records": PEOPLE, "count": 3}}, {})
    assert result == {"records": PEOPLE, "count": 3}


def test_processor_applies_every_step_in_order() -> None:
    config = {
        "filter": "age >= 30",
        "select": ["name", "city"],
        "rename": {"name": "who"},
        "uppercase": ["who", "missing"],
        "sort_by": "city",
        "limit": 5,
    }
    result = run(data_processor_plugin, {"records": PEOPLE}, config)
    assert result == {
        "records": [{"who": "CID", "city": "Leiden"}, {"who": "ANN", "city": "Utrecht"}],
        "count": 2,
    }
    # The inputs are not modified.
    assert PEOPLE[0] == {"name": "ann", "age": 31, "city": "Utrecht"}


def test_processor_filters_csv_strings_with_conversion() -> None:
    records = [{"name": "ann", "age": "31"}, {"name": "bob", "age": "25"}]
    result = run(data_processor_plugin, {"src": records}, {"filter": "int(age) > 30"})
    assert result == {"records": [{"name": "ann", "age": "31"}], "count": 1}


def test_processor_sorts_descending_with_missing_last() -> None:
    records = [{"n": 2}, {"x": 1}, {"n": 10}, {"n": None}, {"n": 5}]
    result = run(data_processor_plugin, {"records": records}, {"sort_by": "n", "descending": True})
    assert result["records"] == [{"n": 10}, {"n": 5}, {"n": 2}, {"x": 1}, {"n": None}]
    result = run(data_processor_plugin, {"records": records}, {"sort_by": "n", "limit": 2})
    assert result == {"records": [{"n": 2}, {"n": 5}], "count": 2}


def test_processor_sorts_mixed_types_without_error() -> None:
    records = [{"v": "b"}, {"v": 3}, {"v": True}, {"v": [1]}, {"v": 1.5}]
    result = run(data_processor_plugin, {"records": records}, {"sort_by": "v"})
    assert [record["v"] for record in result["records"]] == [True, 1.5, 3, "b", [1]]


def test_processor_filter_failure_names_the_record() -> None:
    records = [{"age": 40}, {"age": "old"}]
    message = data_error(data_processor_plugin, {"records": records}, {"filter": "age > 30"})
    assert "record 1" in message
    assert "type mismatch" in message
    message = data_error(data_processor_plugin, {"records": [{"a": 1}]}, {"filter": "b == 1"})
    assert "record 0" in message
    assert "unknown variable 'b'" in message


def test_processor_without_records_is_an_error() -> None:
    assert "no records" in data_error(data_processor_plugin, {"x": {"y": 1}}, {})


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"filter": "age >"}, "filter"),
        ({"filter": 5}, "filter"),
        ({"select": "name"}, "select"),
        ({"select": ["name", 3]}, "select"),
        ({"rename": ["a"]}, "rename"),
        ({"rename": {"a": 1}}, "rename"),
        ({"uppercase": [""]}, "uppercase"),
        ({"sort_by": ["a"]}, "sort_by"),
        ({"sort_by": "a", "descending": "yes"}, "descending"),
        ({"limit": 1.5}, "limit"),
    ],
)
def test_processor_config_errors(config: dict[str, Any], key: str) -> None:
    config_error(data_processor_plugin, {"records": PEOPLE}, config, key)


# --- data_sink ------------------------------------------------------------------------------


def test_sink_writes_json_and_reports_digest(tmp_path: Path) -> None:
    path = tmp_path / "out" / "deep" / "people.json"
    result = run(data_sink_plugin, {"proc": {"records": PEOPLE, "count": 3}}, {"path": str(path)})
    data = path.read_bytes()
    assert json.loads(data) == PEOPLE
    assert result == {
        "path": str(path),
        "count": 3,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }


def test_sink_writes_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    run(data_sink_plugin, {"records": PEOPLE}, {"path": str(path)})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == PEOPLE


def test_sink_writes_csv_with_union_header(tmp_path: Path) -> None:
    path = tmp_path / "mixed.data"
    records = [
        {"a": 1, "b": "x,y"},
        {"c": True, "a": None},
        {"b": "line\nbreak", "d": {"k": [1, 2]}},
    ]
    result = run(data_sink_plugin, {"records": records}, {"path": str(path), "format": "csv"})
    assert result["count"] == 3
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["a", "b", "c", "d"],
        ["1", "x,y", "", ""],
        ["", "", "true", ""],
        ["", "line\nbreak", "", '{"k": [1, 2]}'],
    ]


def test_sink_escapes_csv_formulas_by_default(tmp_path: Path) -> None:
    """Cells a spreadsheet would run as a formula (OWASP CSV injection) start with a quote."""
    path = tmp_path / "hostile.csv"
    records = [
        {"=key": '=HYPERLINK("http://x")', "b": "+1+1", "c": "-2+3+cmd|' /C calc'!A0"},
        {"=key": "@SUM(A1)", "b": "\tx", "c": "\r=1", "n": -5},
        {"=key": "a=b", "b": "", "c": "plain", "n": 2.5},
    ]
    run(data_sink_plugin, {"records": records}, {"path": str(path)})
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["'=key", "b", "c", "n"],
        ['\'=HYPERLINK("http://x")', "'+1+1", "'-2+3+cmd|' /C calc'!A0", ""],
        ["'@SUM(A1)", "'\tx", "'\r=1", "-5"],  # a JSON number is a number, not a formula
        ["a=b", "", "plain", "2.5"],
    ]


def test_sink_csv_formula_escaping_can_be_switched_off(tmp_path: Path) -> None:
    path = tmp_path / "raw.csv"
    records = [{"f": "=1+1", "g": "@x"}]
    run(data_sink_plugin, {"records": records}, {"path": str(path), "csv_escape_formulas": False})
    with path.open(encoding="utf-8", newline="") as handle:
        assert list(csv.reader(handle)) == [["f", "g"], ["=1+1", "@x"]]
    config_error(
        data_sink_plugin,
        {"records": records},
        {"path": str(path), "csv_escape_formulas": "no"},
        "csv_escape_formulas",
    )


def stream_ctx(batch: int, execution_id: str = "e", *, replays: bool = True) -> PluginContext:
    ctx = make_ctx("sink")
    ctx.stream_batch = batch
    ctx.stream_replays = replays
    ctx.execution_id = execution_id
    return ctx


def sink_batch(path: Path, batch: int, ns: list[Any], *, replays: bool = True) -> dict[str, Any]:
    """data_sink as a stream calls it: one micro-batch, numbered."""
    inputs = {"upstream": [{"n": n} for n in ns]}
    checked = data_sink_plugin.check_config({"path": str(path)})
    result = data_sink_plugin.function(inputs, checked, stream_ctx(batch, replays=replays))
    assert isinstance(result, dict)
    return result


def jsonl_ns(path: Path) -> list[int]:
    return [json.loads(line)["n"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_sink_in_a_stream_appends_and_a_replay_cuts_back(tmp_path: Path) -> None:
    path = tmp_path / "out" / "stream.jsonl"
    path.parent.mkdir()
    write(path, '{"n": -1}\n')  # an earlier run's file: the stream's first batch replaces it
    first = sink_batch(path, 0, [0, 1])
    assert jsonl_ns(path) == [0, 1]
    assert (first["count"], first["batch"], first["file_bytes"]) == (2, 0, path.stat().st_size)
    sink_batch(path, 1, [2])
    sink_batch(path, 2, [3, 4])
    # The worker died after batch 2; the stream resumed from the checkpoint after batch 0 and
    # reads the same items again, cut into batches differently.
    sink_batch(path, 1, [2, 3])
    assert jsonl_ns(path) == [0, 1, 2, 3]
    sink_batch(path, 2, [4])
    sink_batch(path, 3, [5])
    assert jsonl_ns(path) == [0, 1, 2, 3, 4, 5]
    assert files_in(path.parent) == [".stream.jsonl.batches", "stream.jsonl"]


def test_sink_in_a_stream_survives_a_torn_write_and_skipped_batches(tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl"
    sink_batch(path, 0, [0])
    sink_batch(path, 3, [1])  # batches 1 and 2 had nothing for this sink
    sink_batch(path, 4, [2, 3])
    # The worker died while writing batch 4, and while recording batch 5 in the journal.
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 5)
    with (tmp_path / ".stream.jsonl.batches").open("ab") as handle:
        handle.write(b"\x00\x00\x00")
    sink_batch(path, 4, [2, 3])
    assert jsonl_ns(path) == [0, 1, 2, 3]
    sink_batch(path, 2, [1, 2, 3])  # a replay from before batch 3 cuts back to it
    assert jsonl_ns(path) == [0, 1, 2, 3]


def test_sink_in_a_stream_cuts_back_a_batch_that_never_finished(tmp_path: Path) -> None:
    """The worker died while writing a batch: it was never committed, so whatever it left
    goes, whether the source replays or not."""
    for replays in (True, False):
        path = tmp_path / f"stream-{replays}.jsonl"
        sink_batch(path, 0, [0], replays=replays)
        with pytest.raises(PluginError):
            sink_batch(path, 1, [1, float("nan")], replays=replays)  # fails before writing
        with path.open("ab") as handle:
            handle.write(b'{"n": 1}\n{"n"')  # as if it had died halfway through the write
        sink_batch(path, 1, [1], replays=replays)
        assert jsonl_ns(path) == [0, 1]


def test_sink_in_a_stream_of_a_source_that_does_not_replay_never_cuts_back(
    tmp_path: Path,
) -> None:
    """A broker redelivers only what was never acknowledged: batches the stream committed
    stay, though their numbers come again after a crash (the checkpoint lagged)."""
    path = tmp_path / "stream.jsonl"
    sink_batch(path, 0, [0, 1], replays=False)
    sink_batch(path, 1, [2], replays=False)
    sink_batch(path, 2, [3], replays=False)  # committed and acknowledged, not heartbeated
    sink_batch(path, 1, [4], replays=False)  # after the crash: only the unacknowledged item
    assert jsonl_ns(path) == [0, 1, 2, 3, 4]


def test_sink_in_a_stream_a_new_execution_starts_the_file_afresh(tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl"
    sink_batch(path, 0, [0])
    sink_batch(path, 1, [1])
    checked = data_sink_plugin.check_config({"path": str(path)})
    data_sink_plugin.function({"u": [{"n": 7}]}, checked, stream_ctx(5, execution_id="other"))
    assert jsonl_ns(path) == [7]


def test_sink_in_a_stream_csv_keeps_the_first_batch_columns(tmp_path: Path) -> None:
    path = tmp_path / "stream.csv"
    checked = data_sink_plugin.check_config({"path": str(path)})
    records = [{"=a": "=1", "b": 2}]
    data_sink_plugin.function({"u": records}, checked, stream_ctx(0))
    data_sink_plugin.function({"u": [{"b": 3}, {"=a": "x"}]}, checked, stream_ctx(1))
    with path.open(encoding="utf-8", newline="") as handle:
        assert list(csv.reader(handle)) == [["'=a", "b"], ["'=1", "2"], ["", "3"], ["x", ""]]
    with pytest.raises(PluginError) as info:
        data_sink_plugin.function({"u": [{"c": 1}]}, checked, stream_ctx(2))
    assert info.value.code is PluginErrorCode.PluginExecutionFailed
    assert "'c'" in info.value.message
    assert "first batch fixes the CSV columns" in info.value.message


def test_sink_in_a_stream_refuses_a_json_array(tmp_path: Path) -> None:
    path = tmp_path / "stream.json"
    checked = data_sink_plugin.check_config({"path": str(path)})
    with pytest.raises(PluginError) as info:
        data_sink_plugin.function({"u": [{"n": 1}]}, checked, stream_ctx(0))
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert "'format'" in info.value.message
    assert not path.exists()


def test_sink_empty_records_give_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    result = run(data_sink_plugin, {"records": []}, {"path": str(path)})
    assert result["bytes"] == 0
    assert path.read_bytes() == b""


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_sink_is_idempotent(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "out" / f"people{suffix}"
    inputs = {"records": PEOPLE}
    first = run(data_sink_plugin, inputs, {"path": str(path)})
    content = path.read_bytes()
    second = run(data_sink_plugin, inputs, {"path": str(path)})
    assert first == second
    assert path.read_bytes() == content
    assert files_in(path.parent) == [path.name]  # no temporary files left behind


def test_sink_replaces_an_existing_file(tmp_path: Path) -> None:
    path = write(tmp_path / "people.json", "old contents that are longer than the new ones" * 9)
    run(data_sink_plugin, {"records": [{"a": 1}]}, {"path": str(path)})
    assert json.loads(path.read_text(encoding="utf-8")) == [{"a": 1}]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_sink_source_round_trip(tmp_path: Path, suffix: str) -> None:
    records = [{"name": "ann", "city": "Utrecht"}, {"name": "zoë", "city": "Gent, BE"}]
    path = tmp_path / f"round{suffix}"
    written = run(data_sink_plugin, {"records": records}, {"path": str(path)})
    read = run(data_source_plugin, {}, {"path": written["path"]})
    assert read == {"records": records, "count": 2, "source": str(path)}


def test_sink_round_trip_keeps_json_types(tmp_path: Path) -> None:
    records = [{"i": 1, "f": 2.5, "b": False, "n": None, "l": [1, {"x": "y"}]}]
    path = tmp_path / "typed.json"
    run(data_sink_plugin, {"records": records}, {"path": str(path)})
    assert run(data_source_plugin, {}, {"path": str(path)})["records"] == records


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"path": 7}, "path"),
        ({"path": "out.parquet"}, "path"),
        ({"path": "out.json", "format": "yaml"}, "format"),
        ({"path": "out.csv", "delimiter": '"'}, "delimiter"),
    ],
)
def test_sink_config_errors(tmp_path: Path, config: dict[str, Any], key: str) -> None:
    config_error(data_sink_plugin, {"records": PEOPLE}, config, key)


def test_sink_without_records_is_an_error(tmp_path: Path) -> None:
    message = data_error(data_sink_plugin, {"a": 1}, {"path": str(tmp_path / "x.json")})
    assert "no records" in message
    assert not (tmp_path / "x.json").exists()


# --- file_validator -------------------------------------------------------------------------


def test_validator_accepts_valid_csv(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "id,amount\n1,10\n2,20\n")
    config = {
        "path": str(path),
        "extensions": [".csv"],
        "required_columns": ["id", "amount"],
        "min_rows": 2,
        "max_bytes": 100,
    }
    assert run(file_validator_plugin, {}, config) == {
        "file_valid": True,
        "path": str(path),
        "errors": [],
        "rows": 2,
        "columns": ["id", "amount"],
        "bytes": 20,
    }


def test_validator_non_csv_file_is_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "image.bin"
    path.write_bytes(b"\x89PNG\xff\x00")
    assert run(file_validator_plugin, {"path": str(path)}, {}) == {
        "file_valid": True,
        "path": str(path),
        "errors": [],
        "rows": None,
        "columns": None,
        "bytes": 6,
    }


def test_validator_reports_every_failed_check(tmp_path: Path) -> None:
    path = write(tmp_path / "data.CSV", "id,amount\n1,10\n")
    config = {
        "extensions": ["txt", ".tsv"],
        "required_columns": ["id", "name", "email"],
        "min_rows": 5,
        "max_bytes": 10,
    }
    result = run(file_validator_plugin, {"file_path": str(path)}, config)
    assert result == {
        "file_valid": False,
        "path": str(path),
        "errors": [
            "extension '.CSV' is not one of .tsv, .txt",
            "file is 15 bytes; the limit is 10",
            "missing required columns: name, email",
            "file has 1 data rows; at least 5 required",
        ],
        "rows": 1,
        "columns": ["id", "amount"],
        "bytes": 15,
    }


def test_validator_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.csv"
    result = run(file_validator_plugin, {"upstream": {"path": str(path)}}, {})
    assert result == {
        "file_valid": False,
        "path": str(path),
        "errors": ["file not found"],
        "rows": None,
        "columns": None,
        "bytes": None,
    }


def test_validator_directory_is_not_a_file(tmp_path: Path) -> None:
    result = run(file_validator_plugin, {}, {"path": str(tmp_path)})
    assert result["file_valid"] is False
    assert result["errors"] == ["not a regular file"]


@pytest.mark.parametrize(
    ("content", "errors", "rows", "columns"),
    [
        (b"", ["file is empty; expected a CSV header"], 0, None),
        (b"a,b\n1,2,3\n", ["line 2 has 3 fields; the header has 2"], 1, ["a", "b"]),
        (b"a,b\n1\n", ["line 2 has 1 fields; the header has 2"], 1, ["a", "b"]),
        (b"a,\n1,2\n", ["header column 2 has an empty name"], 1, ["a", ""]),
        (b"a,a\n1,2\n", ["header names column 'a' twice"], 1, ["a", "a"]),
        (b"a\nok\n\xff\xfe\n", ["not valid UTF-8 (line 3)"], None, None),
        (
            b'a,b\n"1,2\n',
            ["malformed CSV at line 2: unexpected end of data"],
            None,
            ["a", "b"],
        ),
    ],
)
def test_validator_malformed_csv(
    tmp_path: Path, content: bytes, errors: list[str], rows: int | None, columns: Any
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    result = run(file_validator_plugin, {}, {"path": str(path)})
    assert result["file_valid"] is False
    assert result["errors"] == errors
    assert (result["rows"], result["columns"]) == (rows, columns)


def test_validator_caps_row_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "wide.csv", "a\n" + "1,2\n" * 13)
    result = run(file_validator_plugin, {}, {"path": str(path)})
    assert len(result["errors"]) == 11
    assert result["errors"][-1] == "... and 3 more rows with the wrong field count"


def test_validator_accepts_bom_and_custom_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes("\ufeffid;name\n1;Zoë\n".encode())
    config = {"path": str(path), "delimiter": ";", "required_columns": ["id"]}
    result = run(file_validator_plugin, {}, config)
    assert (result["file_valid"], result["rows"], result["columns"]) == (True, 1, ["id", "name"])


@pytest.mark.parametrize(
    ("inputs", "config", "key"),
    [
        ({}, {}, "path"),
        ({"path": 5}, {}, "path"),
        ({}, {"path": ["a"]}, "path"),
        ({}, {"path": "a.csv", "extensions": ".csv"}, "extensions"),
        ({}, {"path": "a.csv", "required_columns": [1]}, "required_columns"),
        ({}, {"path": "a.csv", "max_bytes": -1}, "max_bytes"),
        ({}, {"path": "a.csv", "min_rows": "2"}, "min_rows"),
        ({}, {"path": "a.csv", "delimiter": ""}, "delimiter"),
    ],
)
def test_validator_config_errors(inputs: dict[str, Any], config: dict[str, Any], key: str) -> None:
    config_error(file_validator_plugin, inputs, config, key)


# --- csv_processor --------------------------------------------------------------------------


SALES = "region,units,price,note\nnorth,3,0.1,a\nsouth,5,0.2,\n\neast,,1e1,b\nwest,-2,2,\n"


def test_csv_processor_summarises(tmp_path: Path) -> None:
    path = write(tmp_path / "sales.csv", SALES)
    result = run(csv_processor_plugin, {"validate": {"file_valid": True, "path": str(path)}}, {})
    assert result == {
        "path": str(path),
        "rows": 4,
        "columns": ["region", "units", "price", "note"],
        "numeric": {
            "units": {"count": 3, "sum": 6, "min": -2, "max": 5, "mean": 2.0},
            "price": {"count": 4, "sum": 12.3, "min": 0.1, "max": 10.0, "mean": 3.075},
        },
    }
    assert isinstance(result["numeric"]["units"]["sum"], int)


def test_csv_processor_writes_summary_idempotently(tmp_path: Path) -> None:
    path = write(tmp_path / "sales.csv", SALES)
    out = tmp_path / "summaries"
    config = {"path": str(path), "output_dir": str(out)}
    first = run(csv_processor_plugin, {}, config)
    summary_path = out / "sales.summary.json"
    assert first["summary_path"] == str(summary_path)
    written = json.loads(summary_path.read_text(encoding="utf-8"))
    assert written == {key: value for key, value in first.items() if key != "summary_path"}
    content = summary_path.read_bytes()
    assert run(csv_processor_plugin, {}, config) == first
    assert summary_path.read_bytes() == content
    assert files_in(out) == ["sales.summary.json"]


def test_csv_processor_non_numeric_and_special_values(tmp_path: Path) -> None:
    text = "a,b,c,d,e\n1,x,,nan,1e999\n2,3,,inf,1\n٣,4,,1,2\n"
    path = write(tmp_path / "odd.csv", text)
    result = run(csv_processor_plugin, {"path": str(path)}, {"delimiter": ","})
    assert result["rows"] == 3
    assert result["numeric"] == {}


def test_csv_processor_short_rows_count_as_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "short.csv", "a,b\n1,2\n3\n")
    result = run(csv_processor_plugin, {}, {"path": str(path)})
    assert result["numeric"] == {
        "a": {"count": 2, "sum": 4, "min": 1, "max": 3, "mean": 2.0},
        "b": {"count": 1, "sum": 2, "min": 2, "max": 2, "mean": 2.0},
    }


def test_csv_processor_header_only(tmp_path: Path) -> None:
    path = write(tmp_path / "head.csv", "a,b\n")
    assert run(csv_processor_plugin, {}, {"path": str(path)}) == {
        "path": str(path),
        "rows": 0,
        "columns": ["a", "b"],
        "numeric": {},
    }


def test_csv_processor_missing_file_propagates(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        call(csv_processor_plugin, {"path": str(tmp_path / "gone.csv")}, {}, make_ctx())


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "file is empty"),
        (b"a,b\n1,2,3\n", "line 2 has 3 fields"),
        (b"a\n\xff\n", "not valid UTF-8 (line 2)"),
        (b'a\n"x\n', "malformed CSV"),
    ],
)
def test_csv_processor_malformed(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    assert fragment in data_error(csv_processor_plugin, {}, {"path": str(path)})


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "path"),
        ({"path": 1}, "path"),
        ({"path": "a.csv", "delimiter": "\n"}, "delimiter"),
        ({"path": "a.csv", "output_dir": False}, "output_dir"),
    ],
)
def test_csv_processor_config_errors(config: dict[str, Any], key: str) -> None:
    config_error(csv_processor_plugin, {}, config, key)


# --- error_handler --------------------------------------------------------------------------


def test_error_handler_reports_and_quarantines(tmp_path: Path) -> None:
    source = write(tmp_path / "orders.csv", "x")
    inputs = {"validate": {"file_valid": False, "path": str(source), "errors": ["a", "missing b"]}}
    config = {"report_dir": str(tmp_path / "reports"), "quarantine_dir": str(tmp_path / "q")}
    result = run(error_handler_plugin, inputs, config)

    digest = hashlib.sha256(
        json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:12]
    report_path = tmp_path / "reports" / f"orders-{digest}.error.json"
    quarantined = tmp_path / "q" / "orders.csv"
    assert result == {
        "handled": True,
        "report_path": str(report_path),
        "quarantined_path": str(quarantined),
        "reason": "a; missing b",
    }
    assert json.loads(report_path.read_text(encoding="utf-8")) == {
        "execution_id": "e",
        "workflow_id": "w",
        "node_id": "n",
        "inputs": inputs,
        "reason": "a; missing b",
    }
    assert not source.exists()
    assert quarantined.read_text(encoding="utf-8") == "x"


def test_error_handler_is_idempotent(tmp_path: Path) -> None:
    source = write(tmp_path / "orders.csv", "x")
    inputs = {"path": str(source), "errors": ["bad"]}
    config = {"report_dir": str(tmp_path / "reports"), "quarantine_dir": str(tmp_path / "q")}
    first = run(error_handler_plugin, inputs, config)
    report = Path(first["report_path"]).read_bytes()
    second = run(error_handler_plugin, inputs, config)  # the source is already quarantined
    assert second == first
    assert Path(second["report_path"]).read_bytes() == report
    assert len(files_in(tmp_path / "reports")) == 1
    assert files_in(tmp_path / "q") == ["orders.csv"]


def test_error_handler_without_source_file(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    config = {"report_dir": str(reports), "reason": "upstream timed out"}
    ctx = make_ctx(node_id="fetch step")
    result = call(error_handler_plugin, {"order": 7}, config, ctx)
    assert isinstance(result, dict)
    assert result["quarantined_path"] is None
    assert result["reason"] == "upstream timed out"
    assert Path(result["report_path"]).name.startswith("fetch_step-")
    assert json.loads(Path(result["report_path"]).read_text(encoding="utf-8"))["node_id"] == (
        "fetch step"
    )


def test_error_handler_missing_source_is_not_quarantined(tmp_path: Path) -> None:
    config = {"report_dir": str(tmp_path / "r"), "quarantine_dir": str(tmp_path / "q")}
    result = run(error_handler_plugin, {"path": str(tmp_path / "gone.csv")}, config)
    assert result["quarantined_path"] is None
    assert result["reason"] == "unspecified"
    assert Path(result["report_path"]).name.startswith("gone-")
    assert not (tmp_path / "q").exists()


def test_error_handler_different_inputs_get_different_reports(tmp_path: Path) -> None:
    config = {"report_dir": str(tmp_path / "r")}
    first = run(error_handler_plugin, {"errors": ["one"]}, config)
    second = run(error_handler_plugin, {"errors": ["two"]}, config)
    assert first["report_path"] != second["report_path"]
    assert len(files_in(tmp_path / "r")) == 2


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "report_dir"),
        ({"report_dir": ""}, "report_dir"),
        ({"report_dir": "r", "quarantine_dir": 3}, "quarantine_dir"),
        ({"report_dir": "r", "reason": ["x"]}, "reason"),
        ({"report_dir": "r", "path": {}}, "path"),
    ],
)
def test_error_handler_config_errors(config: dict[str, Any], key: str) -> None:
    config_error(error_handler_plugin, {}, config, key)


# --- a small pipeline -----------------------------------------------------------------------


def test_pipeline_validate_summarise_filter_and_write(tmp_path: Path) -> None:
    path = write(tmp_path / "sales.csv", SALES)
    checked = run(file_validator_plugin, {"path": str(path)}, {"required_columns": ["units"]})
    assert checked["file_valid"] is True
    summary = run(csv_processor_plugin, {"validate": checked}, {})
    assert summary["rows"] == 4
    source = run(data_source_plugin, {}, {"path": checked["path"]})
    processed = run(
        data_processor_plugin,
        {"source": source},
        {"filter": "units != '' && int(units) > 0", "select": ["region", "units"]},
    )
    out = tmp_path / "out" / "positive.csv"
    sink = run(data_sink_plugin, {"process": processed}, {"path": str(out)})
    assert sink["count"] == 2
    assert out.read_bytes() == b"region,units\r\nnorth,3\r\nsouth,5\r\n"


# --- crash safety ---------------------------------------------------------------------------


def test_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "people.json", "[]\n")

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        call(data_sink_plugin, {"records": PEOPLE}, {"path": str(path)}, make_ctx())
    assert path.read_text(encoding="utf-8") == "[]\n"
    assert files_in(tmp_path) == ["people.json"]


def test_quarantine_across_devices_copies_then_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path / "orders.csv", "data")
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    config = {"report_dir": str(tmp_path / "r"), "quarantine_dir": str(tmp_path / "q")}
    result = run(error_handler_plugin, {"path": str(source)}, config)
    assert result["quarantined_path"] == str(tmp_path / "q" / "orders.csv")
    assert not source.exists()
    assert files_in(tmp_path / "q") == ["orders.csv"]
    assert (tmp_path / "q" / "orders.csv").read_text(encoding="utf-8") == "data"
