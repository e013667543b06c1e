"""Bounds on what the plugin catalog entity keeps (engine.runtime.catalog_bounds)."""

from __future__ import annotations

import pytest

from engine.runtime import catalog_bounds
from engine.runtime.catalog_bounds import entry_problem, with_entry
from engine.runtime.contracts import CatalogEntry, PluginInfo


def _entry(identity: str, *plugin_ids: str, description: str = "") -> CatalogEntry:
    plugins = [PluginInfo(plugin_id=p, description=description) for p in plugin_ids]
    return CatalogEntry(identity=identity, plugins=plugins)


def test_a_plausible_entry_passes_and_replaces_its_workers_earlier_one() -> None:
    first = _entry("w1", "echo")
    assert entry_problem(first) is None
    entries = with_entry([first, _entry("w2", "sleep")], _entry("w1", "echo", "count"))
    assert [e.identity for e in entries] == ["w2", "w1"]
    assert [p.plugin_id for p in entries[1].plugins] == ["echo", "count"]


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (_entry(""), "identity must be 1-256 characters"),
        (_entry("w" * 257), "identity must be 1-256 characters"),
        (_entry("w", *(f"p{i}" for i in range(1001))), "1,001 plugins, over the limit of 1,000"),
        (_entry("w", "big", description="x" * 300_000), "bytes of JSON, over the limit of 262,144"),
    ],
)
def test_an_implausible_entry_is_refused(entry: CatalogEntry, fragment: str) -> None:
    problem = entry_problem(entry)
    assert problem is not None
    assert fragment in problem


def test_the_oldest_entries_give_way_beyond_the_worker_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog_bounds, "MAX_CATALOG_WORKERS", 3)
    entries: list[CatalogEntry] = []
    for number in range(5):
        entries = with_entry(entries, _entry(f"w{number}", "echo"))
    assert [e.identity for e in entries] == ["w2", "w3", "w4"]


def test_the_oldest_entries_give_way_beyond_the_catalog_size() -> None:
    # Five entries of about 150 KB each, distinct plugin ids: two fit in 400 KB, three not.
    entries: list[CatalogEntry] = []
    for number in range(5):
        entry = _entry(f"w{number}", f"p{number}", description="x" * 150_000)
        assert entry_problem(entry) is None
        entries = with_entry(entries, entry)
    assert [e.identity for e in entries] == ["w3", "w4"]
    assert not catalog_bounds.over_size(entries)
