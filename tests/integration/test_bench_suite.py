"""``python -m bench.suite --quick`` runs every scenario against its hand-written baseline on
its own dev server and writes one key per scenario with positive figures.

A smoke test of the benchmark harness (tiny sizes, one run each), run as a user runs it: in a
fresh Python process, which must exit 0 with no ``Fatal Python error``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
KEYS = (
    "chain-100",
    "fanout-100",
    "concurrent-200",
    "light-chain-100",
    "light-chain-100-vs-local",
    "light-latency-3",
    "map-10000-batched",
    "stream",
    "history-chain-100",
)
COMMON = ("engine_median_s", "baseline_median_s", "ratio", "engine_min_s", "engine_max_s")
SPECIFIC = {
    "light-latency-3": (
        "engine_eager_p50_s",
        "engine_eager_p95_s",
        "engine_p50_s",
        "engine_p95_s",
        "baseline_eager_p50_s",
        "baseline_p50_s",
    ),
    "stream": ("items_per_s", "baseline_items_per_s"),
    "concurrent-200": ("engine_runs_per_s", "baseline_runs_per_s"),
    "chain-100": ("engine_history_kb", "baseline_history_kb"),
    "history-chain-100": (
        "engine_bytes_per_node",
        "baseline_bytes_per_node",
        "engine_events_per_node",
        "events_ratio",
    ),
}


def test_quick_suite_writes_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.suite", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Fatal Python error" not in result.stderr
    figures = json.loads(out.read_text())
    assert figures["quick"] is True
    assert "request_eager_start=True" in figures["starts"]
    for key in KEYS:
        row = figures[key]
        for field in COMMON + SPECIFIC.get(key, ()):
            value = row[field]
            assert isinstance(value, int | float), (key, field, value)
            assert math.isfinite(value), (key, field, value)
            assert value > 0, (key, field, value)
        assert row["engine_min_s"] <= row["engine_median_s"] <= row["engine_max_s"], key
    # both sides of every fair comparison really started eagerly, the plain variant did not
    for key in ("chain-100", "fanout-100", "light-latency-3"):
        accepted = figures[key]["eager_accepted"]
        assert accepted["engine"] == accepted["baseline"] == accepted["of"], (key, accepted)
    assert figures["light-latency-3"]["eager_accepted"]["engine_plain"] == 0
    for key in KEYS:  # the table names every scenario
        assert f"\n{key} " in result.stdout, key
