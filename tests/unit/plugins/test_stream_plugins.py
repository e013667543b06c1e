"""The stream sources and processors, on real files and a real SQLite database."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.base.errors import PluginError, PluginErrorCode
from plugins import Plugin, PluginContext, Source, SourceItem, SourceSpec, source_plugin
from plugins.builtin import (
    data_filter_plugin,
    data_transformer_plugin,
    open_file_system_monitor,
    open_jsonl_source,
)
from plugins.builtin import file_system_monitor as fsm
from plugins.builtin.database_writer import database_writer_plugin
from tests.helpers.plugin_config import call, names_key


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
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    return result


def plugin_error(plugin: Plugin, inputs: dict[str, Any], config: dict[str, Any]) -> PluginError:
    with pytest.raises(PluginError) as info:
        call(plugin, inputs, config, make_ctx())
    return info.value


async def open_source(spec: SourceSpec, config: dict[str, Any], checkpoint: Any = None) -> Source:
    if spec.config_model is not None:  # the configuration the catalog would accept
        spec.config_model.model_validate(config)
    source = await spec.open(config, checkpoint, make_ctx())
    assert isinstance(source, Source)
    return source


async def read_all(source: Source, *, max_wait: float = 0.3, limit: int = 100) -> list[SourceItem]:
    """Read until a read comes back empty (or the source is exhausted)."""
    items: list[SourceItem] = []
    while len(items) < limit and not source.exhausted:
        batch = await source.read(limit - len(items), max_wait)
        if not batch:
            break
        items.extend(batch)
    return items


# --- file_system_monitor ----------------------------------------------------------------------

MAX_DONE_DIGESTS = fsm.MAX_DONE_DIGESTS

FAST = {"poll_interval": 0.02, "settle_seconds": 0.05}


def drop(directory: Path, name: str, text: str = "data") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


async def test_monitor_emits_existing_new_and_modified_files(tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    zone.mkdir()
    first = drop(zone, "a.csv", "1")
    source = await open_source(open_file_system_monitor, {"watch_path": str(zone), **FAST})
    try:
        [item] = await source.read(10, 2.0)
        info = first.stat()
        assert item.value == {
            "path": str(first),
            "name": "a.csv",
            "size": 1,
            "mtime": info.st_mtime_ns / 1e9,
            "event": "created",
        }
        assert item.item_id == f"{first}|{info.st_ino}|{info.st_ctime_ns}|1|{info.st_mtime_ns}"
        assert item.event_type == "created"
        assert not source.exhausted

        second = drop(zone, "b.csv", "22")
        [item] = await source.read(10, 2.0)
        assert (item.value["path"], item.event_type) == (str(second), "created")

        first.write_text("1111", encoding="utf-8")
        [item] = await source.read(10, 2.0)
        assert (item.value["name"], item.value["size"], item.event_type) == ("a.csv", 4, "modified")
        assert item.value["event"] == "modified"

        assert await source.read(10, 0.15) == []  # nothing changed since
    finally:
        await source.close()


async def test_monitor_waits_until_a_file_settles(tmp_path: Path) -> None:
    config = {"watch_path": str(tmp_path), "poll_interval": 0.02, "settle_seconds": 0.25}
    source = await open_source(open_file_system_monitor, config)
    try:
        path = tmp_path / "upload.bin"
        with path.open("wb") as handle:
            for _ in range(4):  # still being written: never quiet for 0.25 s
                handle.write(b"x" * 100)
                handle.flush()
                assert await source.read(10, 0.1) == []
        [item] = await source.read(10, 2.0)
        assert item.value["size"] == 400  # emitted once, complete
        assert await source.read(10, 0.35) == []
    finally:
        await source.close()


async def test_monitor_resumes_from_checkpoint(tmp_path: Path) -> None:
    zone = tmp_path / "zone"
    zone.mkdir()
    a = drop(zone, "a.txt")
    b = drop(zone, "b.txt")
    config = {"watch_path": str(zone), **FAST}

    source = await open_source(open_file_system_monitor, config)
    items = await read_all(source)
    assert [item.value["name"] for item in items] == ["a.txt", "b.txt"]  # the order they landed
    await source.commit(items[:1])  # b is read, never committed
    checkpoint = source.checkpoint()
    assert checkpoint["format"] == 2
    assert checkpoint["ctime_ns"] <= b.stat().st_ctime_ns  # b still waits
    await source.close()

    c = drop(zone, "c.txt")  # lands while nothing runs
    source = await open_source(open_file_system_monitor, config, json.loads(json.dumps(checkpoint)))
    try:
        items = await read_all(source)
        assert [item.value["name"] for item in items] == ["b.txt", "c.txt"]
        assert all(item.event_type == "created" for item in items)
        await source.commit(items)

        b.unlink()  # deleting emits nothing
        assert await source.read(10, 0.15) == []
        checkpoint = source.checkpoint()
    finally:
        await source.close()
    source = await open_source(open_file_system_monitor, config, json.loads(json.dumps(checkpoint)))
    try:
        assert await read_all(source, max_wait=0.2) == []  # a and c are done
        assert a.exists()
        assert c.exists()
    finally:
        await source.close()


async def test_monitor_redelivers_an_uncommitted_file_with_the_same_id(tmp_path: Path) -> None:
    """A crash between read and commit: the same file state comes again with the same id,
    which the engine drops as a duplicate."""
    drop(tmp_path, "a.txt")
    config = {"watch_path": str(tmp_path), **FAST}
    source = await open_source(open_file_system_monitor, config)
    [first] = await source.read(10, 2.0)
    checkpoint = source.checkpoint()  # as heartbeated before the crash: nothing committed
    await source.close()
    source = await open_source(open_file_system_monitor, config, json.loads(json.dumps(checkpoint)))
    try:
        [again] = await source.read(10, 2.0)
        assert again.item_id == first.item_id
    finally:
        await source.close()


async def test_monitor_a_file_that_reappears_is_a_new_event(tmp_path: Path) -> None:
    """Moved out and back, or re-created with the same size and modification time: a new
    event with a new id (the engine deduplicates by id)."""
    zone = tmp_path / "zone"
    zone.mkdir()
    a = drop(zone, "a.csv", "same")
    config = {"watch_path": str(zone), **FAST}
    source = await open_source(open_file_system_monitor, config)
    try:
        [first] = await source.read(10, 2.0)
        await source.commit([first])
        a.rename(tmp_path / "a.csv")  # moved out...
        assert await source.read(10, 0.15) == []
        (tmp_path / "a.csv").rename(a)  # ...and back
        [back] = await source.read(10, 2.0)
        assert back.value["path"] == first.value["path"]
        assert (back.value["size"], back.value["mtime"]) == (
            first.value["size"],
            first.value["mtime"],
        )
        assert back.item_id != first.item_id
        await source.commit([back])

        a.rename(tmp_path / "a.csv")  # out and back between two scans
        (tmp_path / "a.csv").rename(a)
        [quick] = await source.read(10, 2.0)
        assert quick.item_id not in {first.item_id, back.item_id}
        await source.commit([quick])

        mtime_ns = a.stat().st_mtime_ns
        a.unlink()  # re-created with the same content and modification time (cp -p)
        drop(zone, "a.csv", "same")
        os.utime(a, ns=(mtime_ns, mtime_ns))
        [copied] = await source.read(10, 2.0)
        assert copied.item_id not in {first.item_id, back.item_id, quick.item_id}
        checkpoint = source.checkpoint()
    finally:
        await source.close()

    a.rename(tmp_path / "a.csv")  # moved out and back while nothing runs
    (tmp_path / "a.csv").rename(a)
    source = await open_source(open_file_system_monitor, config, json.loads(json.dumps(checkpoint)))
    try:
        [after_restart] = await source.read(10, 2.0)
        assert after_restart.item_id != copied.item_id
    finally:
        await source.close()


async def test_monitor_checkpoint_stays_bounded(tmp_path: Path) -> None:
    """3,000 files with long names: the first format's checkpoint listed every one (over
    700 KB); now it is a watermark, small whatever the zone holds."""
    zone = tmp_path / "zone"
    zone.mkdir()
    for i in range(3000):
        drop(zone, f"{'x' * 200}-{i:05}.csv", "1")
    config = {"watch_path": str(zone), "poll_interval": 0.05, "settle_seconds": 0}
    source = await open_source(open_file_system_monitor, config)
    try:
        items = await read_all(source, limit=5000)
        assert len(items) == 3000
        sizes = []
        for start in range(0, 3000, 100):
            await source.commit(items[start : start + 100])
            sizes.append(len(json.dumps(source.checkpoint())))
        # Once the burst is a second older than a scan, the watermark covers all of it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while source.checkpoint()["done"] and loop.time() < deadline:
            assert await source.read(10, 0.1) == []
        checkpoint = source.checkpoint()
    finally:
        await source.close()
    assert max(sizes) <= 20 * MAX_DONE_DIGESTS + 100
    assert checkpoint["done"] == []
    assert len(json.dumps(checkpoint)) < 100
    source = await open_source(open_file_system_monitor, config, checkpoint)
    try:
        drop(zone, "late.csv")  # dropped while "paused"
        [item] = await read_all(source)
        assert item.value["name"] == "late.csv"
    finally:
        await source.close()


async def test_monitor_reads_a_first_format_checkpoint(tmp_path: Path) -> None:
    """An execution running when the format changed goes on: files recorded with the same
    size and modification time are done, the others are events."""
    zone = tmp_path / "zone"
    zone.mkdir()
    done = drop(zone, "done.txt", "1")
    changed = drop(zone, "changed.txt", "2")
    drop(zone, "new.txt", "3")
    legacy = {
        str(done): [1, done.stat().st_mtime_ns],
        str(changed): [5, changed.stat().st_mtime_ns],
        str(zone / "deleted.txt"): [1, 1],
    }
    config = {"watch_path": str(zone), **FAST}
    source = await open_source(open_file_system_monitor, config, legacy)
    try:
        assert source.checkpoint() == legacy  # kept until the first scan
        items = await read_all(source)
        found = {item.value["name"]: item.event_type for item in items}
        assert found == {"changed.txt": "modified", "new.txt": "created"}
        await source.commit(items)
        checkpoint = source.checkpoint()
        assert checkpoint["format"] == 2
    finally:
        await source.close()
    source = await open_source(open_file_system_monitor, config, checkpoint)
    try:
        assert await read_all(source, max_wait=0.2) == []
    finally:
        await source.close()


async def test_monitor_an_uncommitted_older_file_holds_the_watermark(tmp_path: Path) -> None:
    """Items committed out of order: the checkpoint never covers a file still waiting."""
    drop(tmp_path, "a.txt")
    drop(tmp_path, "b.txt")
    config = {"watch_path": str(tmp_path), **FAST}
    source = await open_source(open_file_system_monitor, config)
    items = await read_all(source)
    await source.commit(items[1:])  # b, not a
    checkpoint = source.checkpoint()
    await source.close()
    source = await open_source(open_file_system_monitor, config, checkpoint)
    try:
        assert [item.value["name"] for item in await read_all(source)] == ["a.txt"]
    finally:
        await source.close()


async def test_monitor_include_existing_false_takes_a_baseline(tmp_path: Path) -> None:
    drop(tmp_path, "old.txt")
    config = {"watch_path": str(tmp_path), "include_existing": False, **FAST}
    source = await open_source(open_file_system_monitor, config)
    try:
        assert source.checkpoint() is None  # before the first scan: still a first start
        assert await source.read(10, 0.15) == []
        checkpoint = source.checkpoint()
        assert checkpoint["format"] == 2
        drop(tmp_path, "new.txt")
        [item] = await source.read(10, 2.0)
        assert item.value["name"] == "new.txt"
    finally:
        await source.close()
    source = await open_source(open_file_system_monitor, config, checkpoint)
    try:
        assert [item.value["name"] for item in await read_all(source)] == ["new.txt"]
    finally:
        await source.close()


async def test_monitor_never_follows_links_or_reads_special_files(tmp_path: Path) -> None:
    """A link in the zone to a private file outside it, a linked directory and a FIFO are
    never events (the file's contents reached outputs and history before)."""
    secret = tmp_path / "secret.csv"
    secret.write_text("password,1\n")
    secret.chmod(0o600)
    outside = tmp_path / "outside"
    outside.mkdir()
    drop(outside, "other.csv")
    zone = tmp_path / "zone"
    (zone / "sub").mkdir(parents=True)
    (zone / "link.csv").symlink_to(secret)
    (zone / "linked_dir").symlink_to(outside, target_is_directory=True)
    (zone / "sub" / "deep_link.csv").symlink_to(secret)
    os.mkfifo(zone / "pipe.csv")
    drop(zone, "real.csv")
    drop(zone / "sub", "deep.csv")
    config = {"watch_path": str(zone), "file_pattern": "*.csv", "recursive": True, **FAST}
    source = await open_source(open_file_system_monitor, config)
    try:
        items = await read_all(source)
        assert sorted(item.value["path"] for item in items) == [
            str(zone / "real.csv"),
            str(zone / "sub" / "deep.csv"),
        ]
    finally:
        await source.close()


def test_monitor_listing_never_leaves_the_zone(tmp_path: Path) -> None:
    """The walk opens subdirectories without following links, and a file whose resolved
    path leaves the zone is not confirmed before it is emitted."""
    outside = tmp_path / "outside"
    outside.mkdir()
    drop(outside, "a.csv")
    zone = tmp_path / "zone"
    zone.mkdir()
    (zone / "sub").symlink_to(outside, target_is_directory=True)
    settings = fsm._settings(fsm.FileSystemMonitorConfig(watch_path=str(zone), recursive=True))
    assert fsm._open_subdirectory(os.open(zone, os.O_RDONLY), "sub") is None
    listing = fsm._list_files(settings)
    assert listing is not None
    assert listing.files == {}
    # A file seen as regular, then swapped for a link to the outside before its emission.
    drop(zone, "b.csv")
    listing = fsm._list_files(settings)
    assert listing is not None
    assert list(listing.files) == ["b.csv"]
    (zone / "b.csv").unlink()
    (zone / "b.csv").symlink_to(outside / "a.csv")
    assert fsm._inside_zone(settings, list(listing.files.items())) == set()


async def test_monitor_pattern_recursion_and_hidden_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    drop(tmp_path, "top.csv")
    drop(tmp_path, "top.txt")
    drop(tmp_path, ".partial.csv")  # hidden: an atomic writer's temporary file
    drop(tmp_path / "sub", "deep.csv")

    flat = await open_source(
        open_file_system_monitor, {"watch_path": str(tmp_path), "file_pattern": "*.csv", **FAST}
    )
    deep = await open_source(
        open_file_system_monitor,
        {"watch_path": str(tmp_path), "file_pattern": "*.csv", "recursive": True, **FAST},
    )
    try:
        assert [item.value["name"] for item in await read_all(flat)] == ["top.csv"]
        names = sorted(item.value["name"] for item in await read_all(deep))
        assert names == ["deep.csv", "top.csv"]
    finally:
        await flat.close()
        await deep.close()


async def test_monitor_waits_for_a_missing_directory(tmp_path: Path) -> None:
    zone = tmp_path / "later"
    source = await open_source(open_file_system_monitor, {"watch_path": str(zone), **FAST})
    try:
        assert await source.read(10, 0.1) == []
        zone.mkdir()
        drop(zone, "x.json")
        [item] = await source.read(10, 2.0)
        assert item.value["path"] == str(zone / "x.json")
    finally:
        await source.close()


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "watch_path"),
        ({"watch_path": "DIR/no/such/parent/zone"}, "watch_path"),
        ({"watch_path": "FILE"}, "watch_path"),
        ({"watch_path": "DIR", "poll_interval": 0}, "poll_interval"),
        ({"watch_path": "DIR", "settle_seconds": -1}, "settle_seconds"),
        ({"watch_path": "DIR", "file_pattern": ""}, "file_pattern"),
        ({"watch_path": "DIR", "recursive": "yes"}, "recursive"),
    ],
)
async def test_monitor_rejects_bad_config(tmp_path: Path, config: dict[str, Any], key: str) -> None:
    regular = drop(tmp_path, "file.txt")

    def replace(value: Any) -> Any:
        if value == "FILE":
            return str(regular)
        if isinstance(value, str) and value.startswith("DIR"):
            return str(tmp_path) + value.removeprefix("DIR")
        return value

    replaced = {name: replace(value) for name, value in config.items()}
    with pytest.raises(PluginError) as info:  # the model, or the zone's checks, as it opens
        await open_file_system_monitor.open(replaced, None, make_ctx())
    assert info.value.code is PluginErrorCode.InvalidConfiguration
    assert names_key(info.value.message, key), info.value.message


# --- jsonl_source -------------------------------------------------------------------------


def jsonl(path: Path, records: list[Any], *, tail: str = "\n") -> Path:
    path.write_text("\n".join(json.dumps(record) for record in records) + tail, encoding="utf-8")
    return path


async def test_jsonl_reads_a_file_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"i": 0}\n\n{"i": 1}\n{"i": 2}\n{"i": 3}', encoding="utf-8")  # no final \n
    source = await open_source(open_jsonl_source, {"path": str(path)})
    try:
        first = await source.read(2, 1.0)
        assert [item.value for item in first] == [{"i": 0}, {"i": 1}]
        assert [item.item_id for item in first] == ["in.jsonl:0", "in.jsonl:10"]
        assert source.checkpoint() is None
        rest = await source.read(10, 1.0)
        assert [item.value for item in rest] == [{"i": 2}, {"i": 3}]
        assert source.exhausted
        assert await source.read(10, 1.0) == []
        await source.commit(first + rest)
        assert source.checkpoint() == {"file": "in.jsonl", "offset": path.stat().st_size}
    finally:
        await source.close()


async def test_jsonl_resumes_exactly_after_the_last_committed_line(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "in.jsonl", [{"i": i, "text": "é" * i} for i in range(6)])
    source = await open_source(open_jsonl_source, {"path": str(path)})
    items = await source.read(4, 1.0)
    await source.commit(items[:2])  # lines 3 and 4 were read, not committed
    checkpoint = source.checkpoint()
    await source.close()
    lines = path.read_bytes().splitlines(keepends=True)
    assert checkpoint == {"file": "in.jsonl", "offset": len(lines[0]) + len(lines[1])}

    source = await open_source(open_jsonl_source, {"path": str(path)}, checkpoint)
    try:
        again = await read_all(source)
        assert [item.value["i"] for item in again] == [2, 3, 4, 5]
        assert again[0].item_id == items[2].item_id  # same line, same id
        assert source.exhausted
    finally:
        await source.close()


async def test_jsonl_reads_a_directory_in_name_order_and_resumes(tmp_path: Path) -> None:
    jsonl(tmp_path / "b.jsonl", [{"f": "b", "i": 0}, {"f": "b", "i": 1}])
    jsonl(tmp_path / "a.jsonl", [{"f": "a", "i": 0}])
    jsonl(tmp_path / "c.jsonl", [{"f": "c", "i": 0}])
    jsonl(tmp_path / ".hidden.jsonl", [{"f": "hidden"}])
    (tmp_path / "notes.txt").write_text("not json\n", encoding="utf-8")
    config = {"path": str(tmp_path)}

    source = await open_source(open_jsonl_source, config)
    items = await read_all(source)
    assert [(item.value["f"], item.value["i"]) for item in items] == [
        ("a", 0),
        ("b", 0),
        ("b", 1),
        ("c", 0),
    ]
    await source.commit(items[:2])
    checkpoint = source.checkpoint()
    assert checkpoint["file"] == "b.jsonl"
    await source.close()

    source = await open_source(open_jsonl_source, config, checkpoint)
    try:
        assert [item.item_id for item in await read_all(source)] == [
            items[2].item_id,
            "c.jsonl:0",
        ]
    finally:
        await source.close()

    # The checkpoint's file was removed: resume with the next name.
    (tmp_path / "b.jsonl").unlink()
    source = await open_source(open_jsonl_source, config, checkpoint)
    try:
        assert [item.item_id for item in await read_all(source)] == ["c.jsonl:0"]
    finally:
        await source.close()


@pytest.mark.parametrize(
    ("line", "problem"),
    [("{bad json", "not valid JSON"), ("[1, 2]", "not an object"), ("NaN", "not valid JSON")],
)
async def test_jsonl_malformed_line_names_file_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"ok": 1}\n\n' + line + '\n{"ok": 2}\n', encoding="utf-8")
    source = await open_source(open_jsonl_source, {"path": str(path)})
    try:
        with pytest.raises(PluginError) as info:
            await read_all(source)
    finally:
        await source.close()
    assert info.value.code is PluginErrorCode.PluginExecutionFailed
    assert f"{path}: line 3" in info.value.message
    assert problem in info.value.message
    assert info.value.details == {"file": "in.jsonl", "line": 3}


async def test_jsonl_follow_waits_for_complete_lines_and_new_files(tmp_path: Path) -> None:
    jsonl(tmp_path / "1.jsonl", [{"n": 1}])
    source = await open_source(
        open_jsonl_source, {"path": str(tmp_path), "follow": True, "poll_interval": 0.02}
    )
    try:
        assert [item.value for item in await source.read(10, 1.0)] == [{"n": 1}]
        assert await source.read(10, 0.1) == []
        assert not source.exhausted
        with (tmp_path / "1.jsonl").open("a", encoding="utf-8") as handle:
            handle.write('{"n": 2')  # half a line: not yet
            handle.flush()
            assert await source.read(10, 0.1) == []
            handle.write("}\n")
        assert [item.value for item in await source.read(10, 1.0)] == [{"n": 2}]
        jsonl(tmp_path / "2.jsonl", [{"n": 3}], tail="")  # unterminated, but last file
        assert await source.read(10, 0.1) == []
        jsonl(tmp_path / "3.jsonl", [{"n": 4}])  # a later file completes the line before
        items = await source.read(10, 1.0)
        assert [item.value for item in items] == [{"n": 3}, {"n": 4}]
        await source.commit(items)
        assert source.checkpoint() == {"file": "3.jsonl", "offset": 9}
    finally:
        await source.close()


async def test_jsonl_cancelled_read_loses_no_lines(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "in.jsonl", [{"i": i} for i in range(5)])
    source = await open_source(open_jsonl_source, {"path": str(path)})
    try:
        task = asyncio.create_task(source.read(3, 1.0))
        await asyncio.sleep(0)  # the read is under way in its thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        batch = await source.read(2, 1.0)  # the cancelled read's lines come first
        assert [item.value["i"] for item in batch] == [0, 1]
        assert [item.value["i"] for item in await read_all(source)] == [2, 3, 4]
        assert source.exhausted
    finally:
        await source.close()


async def test_jsonl_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await open_source(open_jsonl_source, {"path": str(tmp_path / "none.jsonl")})
    source = await open_source(
        open_jsonl_source,
        {"path": str(tmp_path / "later.jsonl"), "follow": True, "poll_interval": 0.02},
    )
    try:
        assert await source.read(10, 0.05) == []
        jsonl(tmp_path / "later.jsonl", [{"x": 1}])
        assert [item.value for item in await source.read(10, 1.0)] == [{"x": 1}]
    finally:
        await source.close()


# --- generator sources (source_plugin) --------------------------------------------------------


@source_plugin("counter")
async def counter(
    config: dict[str, Any], checkpoint: Any, ctx: PluginContext
) -> AsyncIterator[dict[str, Any]]:
    """Counts to n."""
    for i in range(checkpoint or 0, config["n"]):  # starts after the committed items
        if i == config.get("pause_at"):
            await asyncio.sleep(0.2)
        yield {"i": i}


async def test_generator_source_batches_and_resumes_after_committed_items() -> None:
    assert counter.plugin_id == "counter"
    assert counter.description == "Counts to n."
    source = await open_source(counter, {"n": 7, "pause_at": 5})
    first = await source.read(3, 1.0)
    assert [item.value["i"] for item in first] == [0, 1, 2]
    assert [item.item_id for item in first] == ["1", "2", "3"]
    # A batch ends at max_wait when the generator pauses, with what it has.
    second = await source.read(10, 0.1)
    assert [item.value["i"] for item in second] == [3, 4]
    await source.commit(first)
    assert source.checkpoint() == 3
    await source.close()

    source = await open_source(counter, {"n": 7}, 3)
    try:
        rest = await read_all(source)
        assert [item.value["i"] for item in rest] == [3, 4, 5, 6]
        assert source.exhausted
        await source.commit(rest)
        assert source.checkpoint() == 7
    finally:
        await source.close()


# --- data_filter ------------------------------------------------------------------------------

ORDERS = [
    {"id": 1, "amount": 5, "status": "ok"},
    {"id": 2, "amount": 50, "status": "ok"},
    {"id": 3, "amount": 70, "status": "failed"},
    {"id": 4, "amount": 12.5, "status": "ok"},
    {"id": 5, "status": "ok"},
]


def test_filter_keeps_matching_items_and_counts_errors() -> None:
    result = run(
        data_filter_plugin, {"orders": ORDERS}, {"condition": "amount > 10 && status == 'ok'"}
    )
    # cel-python compares a double with an int; the item without an amount is an error.
    assert result == {"items": [ORDERS[1], ORDERS[3]], "count": 2, "dropped": 3, "errors": 1}


def test_filter_concatenates_inputs_and_accepts_batch_shapes() -> None:
    config = {"condition": "status == 'ok'"}
    several = run(data_filter_plugin, {"a": ORDERS[:2], "b": ORDERS[2:]}, config)
    assert [item["id"] for item in several["items"]] == [1, 2, 4, 5]
    upstream = run(data_filter_plugin, {"up": {"items": ORDERS, "count": 5}}, config)
    assert upstream["count"] == 4
    records = run(data_filter_plugin, {"records": ORDERS[:1]}, config)
    assert records["items"] == ORDERS[:1]
    assert run(data_filter_plugin, {"a": []}, config) == {
        "items": [],
        "count": 0,
        "dropped": 0,
        "errors": 0,
    }


def test_filter_string_functions_and_non_boolean_results() -> None:
    items = [{"name": "Ann"}, {"name": "bob"}, {"name": 3}]
    result = run(data_filter_plugin, {"x": items}, {"condition": "name.lowerAscii() == 'ann'"})
    assert result == {"items": [items[0]], "count": 1, "dropped": 2, "errors": 1}
    result = run(data_filter_plugin, {"x": items}, {"condition": "name"})
    assert result["errors"] == 3


def test_filter_on_error_fail_names_the_item() -> None:
    error = plugin_error(
        data_filter_plugin, {"x": ORDERS}, {"condition": "amount > 10", "on_error": "fail"}
    )
    assert error.code is PluginErrorCode.PluginExecutionFailed
    assert "item 4" in error.message
    assert "unknown variable or function 'amount'" in error.message
    assert error.details == {"index": 4}


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "condition"),
        ({"condition": "amount >"}, "condition"),
        ({"condition": "x" * 2000}, "condition"),
        ({"condition": "true", "on_error": "ignore"}, "on_error"),
    ],
)
def test_filter_rejects_bad_config(config: dict[str, Any], key: str) -> None:
    error = plugin_error(data_filter_plugin, {"x": ORDERS}, config)
    assert error.code is PluginErrorCode.InvalidConfiguration
    assert names_key(error.message, key), error.message


def test_filter_without_items_or_with_non_objects() -> None:
    config = {"condition": "true"}
    assert plugin_error(data_filter_plugin, {"x": 1}, config).code is (
        PluginErrorCode.PluginExecutionFailed
    )
    assert plugin_error(data_filter_plugin, {"x": [1]}, config).code is (
        PluginErrorCode.PluginExecutionFailed
    )


# --- data_transformer -------------------------------------------------------------------------


def test_transformer_sets_fields_of_every_json_type() -> None:
    items = [
        {"name": " ann smith ", "price": 2.5, "quantity": 4, "tags": ["a", "b"], "meta": {"k": 1}},
        {"name": "bob", "price": 10.0, "quantity": 1, "tags": [], "meta": {"k": 2}},
    ]
    config = {
        "set": {
            "total": "price * double(quantity)",
            "double_quantity": "quantity * 2",
            "name": "name.trim().upperAscii()",
            "first": "name.trim().split(' ')[0]",
            "bulk": "quantity > 2",
            "label": "quantity > 2 ? 'many' : 'one'",
            "tag_count": "size(tags)",
            "tag_text": "tags.join(',')",
            "summary": "{'k': meta.k, 'tags': tags, 'none': null}",
            "nothing": "null",
            "ratio": "double(quantity) / 8.0",
        },
        "drop": ["tags", "meta"],
        "rename": {"price": "unit_price"},
    }
    result = run(data_transformer_plugin, {"batch": items}, config)
    assert result["count"] == 2
    assert result["errors"] == 0
    first, second = result["items"]
    assert first == {
        "name": "ANN SMITH",
        "unit_price": 2.5,
        "quantity": 4,
        "total": 10.0,
        "double_quantity": 8,
        "first": "ann",
        "bulk": True,
        "label": "many",
        "tag_count": 2,
        "tag_text": "a,b",
        "summary": {"k": 1, "tags": ["a", "b"], "none": None},
        "nothing": None,
        "ratio": 0.5,
    }
    assert type(first["double_quantity"]) is int
    assert type(first["total"]) is float
    assert type(first["bulk"]) is bool
    assert (second["label"], second["tag_text"], second["bulk"]) == ("one", "", False)
    assert items[0]["name"] == " ann smith "  # inputs are not modified


def test_transformer_expressions_see_the_original_item() -> None:
    result = run(
        data_transformer_plugin,
        {"x": [{"a": 1, "b": 2}]},
        {"set": {"a": "b", "b": "a", "c": "a + b"}},
    )
    assert result["items"] == [{"a": 2, "b": 1, "c": 3}]


def test_transformer_other_value_kinds() -> None:
    result = run(
        data_transformer_plugin,
        {"x": [{"s": "héllo"}]},
        {
            "set": {
                "when": "timestamp('2024-05-01T12:00:00Z')",
                "wait": "duration('90s')",
                "raw": "bytes('hi')",
                "big": "9223372036854775807",
                "u": "3u",
                "sub": "s.substring(1, 3)",
                "at": "s.indexOf('l')",
                "swap": "s.replace('l', 'L')",
                "keys": "{1: 'one'}",
            }
        },
    )
    [item] = result["items"]
    assert item["when"] == "2024-05-01T12:00:00Z"
    assert item["wait"] == "90s"
    assert item["raw"] == "aGk="
    assert item["big"] == 9223372036854775807
    assert (item["u"], item["sub"], item["at"], item["swap"]) == (3, "él", 2, "héLLo")
    assert item["keys"] == {"1": "one"}


def test_transformer_errors_fail_or_drop() -> None:
    items = [{"a": 1}, {"a": 0}, {"b": 1}]
    config: dict[str, Any] = {"set": {"inverse": "10 / a"}}
    error = plugin_error(data_transformer_plugin, {"x": items}, config)
    assert error.code is PluginErrorCode.PluginExecutionFailed
    assert "'set.inverse'" in error.message
    assert "item 1" in error.message
    assert "division by zero" in error.message
    result = run(data_transformer_plugin, {"x": items}, {**config, "on_error": "drop"})
    assert result == {"items": [{"a": 1, "inverse": 10}], "count": 1, "errors": 2}


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"set": ["x"]}, "set"),
        ({"set": {"x": "1 +"}}, "set.x"),
        ({"set": {"x": 5}}, "set.x"),
        ({"drop": "x"}, "drop"),
        ({"rename": {"a": 1}}, "rename"),
        ({"on_error": "skip"}, "on_error"),
    ],
)
def test_transformer_rejects_bad_config(config: dict[str, Any], key: str) -> None:
    error = plugin_error(data_transformer_plugin, {"x": [{"a": 1}]}, config)
    assert error.code is PluginErrorCode.InvalidConfiguration
    assert names_key(error.message, key), error.message


# --- database_writer (SQLite) -------------------------------------------------------------


def rows(db: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(query).fetchall()


def test_writer_creates_table_and_upserts_idempotently(tmp_path: Path) -> None:
    db = tmp_path / "out.db"
    config = {"url": f"sqlite:///{db}", "table": "events", "key": "id"}
    batch = [
        {"id": 1, "name": "ann", "score": 1.5, "ok": True, "tags": ["a"], "meta": {"x": 1}},
        {"id": 2, "name": "bob", "score": 2.0, "ok": False, "tags": [], "meta": None},
    ]
    assert run(database_writer_plugin, {"batch": batch}, config) == {
        "written": 2,
        "table": "events",
    }
    assert run(database_writer_plugin, {"batch": batch}, config)["written"] == 2  # a replay
    assert rows(db, "SELECT count(*) FROM events") == [(2,)]
    columns = {row[1]: row[2] for row in rows(db, "PRAGMA table_info(events)")}
    assert columns == {
        "id": "BIGINT",
        "name": "TEXT",
        "score": "DOUBLE",
        "ok": "BOOLEAN",
        "tags": "JSON",
        "meta": "JSON",
    }
    stored = rows(db, "SELECT id, name, score, ok, tags, meta FROM events ORDER BY id")
    assert stored == [(1, "ann", 1.5, 1, '["a"]', '{"x": 1}'), (2, "bob", 2.0, 0, "[]", None)]
    assert rows(db, "SELECT name FROM pragma_table_info('events') WHERE pk = 1") == [("id",)]

    # An update by key, a new key, and a new column added on the fly.
    changed = [{"id": 2, "name": "BOB", "extra": {"n": 1}}, {"id": 3, "name": "cid"}]
    assert run(database_writer_plugin, {"records": changed}, config)["written"] == 2
    stored = rows(db, "SELECT id, name, score, extra FROM events ORDER BY id")
    assert stored == [
        (1, "ann", 1.5, None),
        (2, "BOB", 2.0, '{"n": 1}'),  # no item had "score": the column is left alone
        (3, "cid", None, None),
    ]
    columns = {row[1]: row[2] for row in rows(db, "PRAGMA table_info(events)")}
    assert columns["extra"] == "JSON"

    # Objects in a column that is not JSON are stored as JSON text.
    run(database_writer_plugin, {"in": [{"id": 1, "name": {"first": "ann"}}]}, config)
    assert rows(db, "SELECT name FROM events WHERE id = 1") == [('{"first":"ann"}',)]


def test_writer_collapses_duplicate_keys_and_composite_keys(tmp_path: Path) -> None:
    config = {"url": f"sqlite:///{tmp_path / 'o.db'}", "table": "t", "key": ["a", "b"]}
    batch = [{"a": 1, "b": "x", "v": 1}, {"a": 1, "b": "y", "v": 2}, {"a": 1, "b": "x", "v": 3}]
    assert run(database_writer_plugin, {"in": batch}, config)["written"] == 2
    assert rows(tmp_path / "o.db", "SELECT a, b, v FROM t ORDER BY b") == [(1, "x", 3), (1, "y", 2)]
    error = plugin_error(database_writer_plugin, {"in": [{"a": 1, "v": 1}]}, config)
    assert error.code is PluginErrorCode.PluginExecutionFailed
    assert "key column(s) b" in error.message


def test_writer_appends_without_key_and_respects_columns(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    config = {"url": f"sqlite:///{db}", "table": "log", "columns": ["msg", "level"]}
    batch = [{"msg": "a", "level": 1, "ignored": True}, {"msg": "b"}]
    run(database_writer_plugin, {"in": batch}, config)
    run(database_writer_plugin, {"in": batch}, config)
    assert rows(db, "SELECT msg, level FROM log") == [("a", 1), ("b", None)] * 2
    assert [row[1] for row in rows(db, "PRAGMA table_info(log)")] == ["msg", "level"]
    assert run(database_writer_plugin, {"in": []}, config) == {"written": 0, "table": "log"}


def test_writer_recovers_when_its_cached_table_is_dropped(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    config = {"url": f"sqlite:///{db}", "table": "t", "key": "id"}
    run(database_writer_plugin, {"in": [{"id": 1, "v": "a"}]}, config)
    with sqlite3.connect(db) as connection:
        connection.execute("DROP TABLE t")
    run(database_writer_plugin, {"in": [{"id": 2, "v": "b"}]}, config)
    assert rows(db, "SELECT id, v FROM t") == [(2, "b")]


def test_writer_existing_tables(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE plain (id INTEGER, v TEXT)")
    url = f"sqlite:///{db}"
    error = plugin_error(
        database_writer_plugin, {"in": [{"id": 1}]}, {"url": url, "table": "plain", "key": "id"}
    )
    assert error.code is PluginErrorCode.InvalidConfiguration
    assert "'key'" in error.message
    assert "no primary key or unique constraint" in error.message

    error = plugin_error(
        database_writer_plugin,
        {"in": [{"id": 1, "new": 2}]},
        {"url": url, "table": "plain", "add_columns": False},
    )
    assert error.code is PluginErrorCode.PluginExecutionFailed
    assert "new" in error.message

    error = plugin_error(
        database_writer_plugin,
        {"in": [{"id": 1}]},
        {"url": url, "table": "missing", "create_table": False},
    )
    assert error.code is PluginErrorCode.InvalidConfiguration
    assert "'table'" in error.message

    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE uniq (code TEXT NOT NULL UNIQUE, n INTEGER)")
    config = {"url": url, "table": "uniq", "key": "code"}
    run(database_writer_plugin, {"in": [{"code": "a", "n": 1}]}, config)
    run(database_writer_plugin, {"in": [{"code": "a", "n": 2}]}, config)
    assert rows(db, "SELECT code, n FROM uniq") == [("a", 2)]


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "table"),
        ({"table": "drop table x"}, "table"),
        ({"table": "1abc"}, "table"),
        ({"table": "t", "key": "a b"}, "key"),
        ({"table": "t", "key": []}, "key"),
        ({"table": "t", "key": ["a", "a"]}, "key"),
        ({"table": "t", "url": "nosuchdb://x"}, "url"),
        ({"table": "t", "columns": "a"}, "columns"),
        ({"table": "t", "create_table": 1}, "create_table"),
    ],
)
def test_writer_rejects_bad_config(tmp_path: Path, config: dict[str, Any], key: str) -> None:
    full = {"url": f"sqlite:///{tmp_path / 'o.db'}", **config}
    error = plugin_error(database_writer_plugin, {"in": [{"a": 1}]}, full)
    assert error.code is PluginErrorCode.InvalidConfiguration
    assert names_key(error.message, key), error.message


async def test_generator_source_ids_are_positions_across_reopenings() -> None:
    """Ids are absolute: a source reopened at its checkpoint (after a pause, a redeploy or
    continue-as-new) must not repeat the ids of the items before it, or the engine drops
    the new items as duplicates."""

    @source_plugin("count_up")
    async def count_up(
        config: dict[str, Any], checkpoint: Any, ctx: PluginContext
    ) -> AsyncIterator[dict[str, Any]]:
        for i in range(int(checkpoint or 0), 6):
            yield {"i": i}

    first = await count_up.open({}, None, make_ctx())
    items = await first.read(4, 1.0)
    await first.commit(items[:3])  # the fourth is read, not committed: redelivered below
    assert [item.item_id for item in items] == ["1", "2", "3", "4"]
    checkpoint = first.checkpoint()
    await first.close()

    second = await count_up.open({}, checkpoint, make_ctx())
    again = await second.read(10, 1.0)
    assert [(item.item_id, item.value["i"]) for item in again] == [
        ("4", 3),
        ("5", 4),
        ("6", 5),
    ]
    await second.close()


async def test_generator_source_batches_by_wait_and_keeps_slow_items() -> None:
    """A read returns what arrived within ``max_wait`` (maybe nothing); an item still on its
    way is not lost but comes with a later read; an error comes after the items before it."""

    @source_plugin("slow")
    async def slow(
        config: dict[str, Any], checkpoint: Any, ctx: PluginContext
    ) -> AsyncIterator[dict[str, Any]]:
        yield {"i": 0}
        await asyncio.sleep(0.5)
        yield {"i": 1}
        raise RuntimeError("feed broke")

    source = await slow.open({}, None, make_ctx())
    assert [item.value for item in await source.read(10, 0.2)] == [{"i": 0}]
    assert await source.read(10, 0.1) == []  # the second item is still on its way
    assert [item.value for item in await source.read(1, 1.0)] == [{"i": 1}]
    with pytest.raises(RuntimeError, match="feed broke"):
        await source.read(10, 1.0)
    assert source.exhausted
    await source.close()


async def test_a_generator_source_read_cancelled_as_an_item_arrives_ends_cancelled() -> None:
    """The stream's reader is cancelled (a pause, a new version) in the loop step in which
    an item reaches its waiting read: the read must end cancelled, and lose nothing.

    ``asyncio.wait_for`` (Python 3.11) returned the item instead and dropped the
    cancellation, so the reader went on reading and the stream never stopped."""
    reading: asyncio.Task[list[SourceItem]] | None = None
    cancelled = asyncio.Event()
    more = asyncio.Event()

    @source_plugin("racing")
    async def racing(
        config: dict[str, Any], checkpoint: Any, ctx: PluginContext
    ) -> AsyncIterator[dict[str, Any]]:
        yield {"i": 0}  # wakes the waiting read; the generator runs on in the same step ...
        assert reading is not None
        reading.cancel()  # ... and cancels the read before it resumes
        cancelled.set()
        await more.wait()
        yield {"i": 1}

    source = await racing.open({}, None, make_ctx())
    reading = asyncio.create_task(source.read(10, 30.0))
    await cancelled.wait()
    done, _ = await asyncio.wait({reading}, timeout=10.0)
    assert done, "the read went on after it was cancelled"
    assert reading.cancelled()
    # The item the cancelled read had taken comes with the next read, with its own id.
    again = await source.read(10, 0.05)
    assert [(item.value, item.item_id) for item in again] == [({"i": 0}, "1")]
    more.set()
    assert [(item.value, item.item_id) for item in await source.read(10, 5.0)] == [({"i": 1}, "2")]
    await source.close()


async def test_closing_a_generator_source_stops_its_generator_mid_item() -> None:
    """close() while the generator is inside an item (and the buffer full) ends it: its
    cleanup runs, nothing keeps running after close, and a cancellation of the closing
    task itself is not swallowed."""
    cleaned = asyncio.Event()
    inside = asyncio.Event()

    @source_plugin("busy")
    async def busy(
        config: dict[str, Any], checkpoint: Any, ctx: PluginContext
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {"i": 0}
            inside.set()
            await asyncio.Event().wait()  # an item that never comes
            yield {"i": 1}
        finally:
            cleaned.set()

    source = await busy.open({}, None, make_ctx())
    assert [item.value for item in await source.read(1, 5.0)] == [{"i": 0}]
    await inside.wait()
    await source.close()
    assert cleaned.is_set()

    # A closer cancelled while it waits for the generator to stop ends cancelled.
    stubborn_inside = asyncio.Event()
    cleaning = asyncio.Event()
    release = asyncio.Event()

    @source_plugin("stubborn")
    async def stubborn(
        config: dict[str, Any], checkpoint: Any, ctx: PluginContext
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            stubborn_inside.set()
            await asyncio.Event().wait()
            yield {"i": 0}
        finally:
            cleaning.set()  # close() has cancelled it and waits for it to end
            await release.wait()  # its cleanup takes a while

    source = await stubborn.open({}, None, make_ctx())
    reading = asyncio.create_task(source.read(1, 30.0))
    await stubborn_inside.wait()
    reading.cancel()
    closing = asyncio.create_task(source.close())
    await cleaning.wait()
    closing.cancel()
    done, _ = await asyncio.wait({closing}, timeout=10.0)
    assert done
    assert closing.cancelled()
    release.set()
