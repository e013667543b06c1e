"""Random fault-injection scenarios for a set time, with figures.

    python -m bench.chaos_soak --minutes 10 [--seed N] [--keep DIR]

Starts one dev server (SQLite file in a temporary directory) and the seeded replayer
processes, then repeats scenarios of tests/chaos/scenarios.py picked at random, each on a
task queue of its own with fresh worker processes, with fault timings and options drawn from
the seed: worker SIGKILL and SIGTERM, server SIGKILL and restart, network partitions and
slow links, pause, cancel and rejected modifications, random graphs. After every round the
ledger invariant (tests/chaos/invariants.py) is checked and every history is replayed under
two hash seeds. Prints one line per round and the totals: runs started and completed,
faults injected, anomalies (the target is 0) and counts per scenario. Exits 1 on any
anomaly.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from engine.devserver import DevServer, free_port
from tests.chaos import scenarios
from tests.chaos.harness import Harness, run_scenario
from tests.chaos.replay import SeededReplayers


@dataclass
class Tally:
    rounds: int = 0
    runs: int = 0
    anomalies: int = 0
    seconds: float = 0.0


@dataclass
class Totals:
    started: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    anomalies: list[str] = field(default_factory=list)
    per_scenario: dict[str, Tally] = field(default_factory=dict)


def _pick(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A scenario and its options; the big race is drawn less often (it takes longest)."""
    name = rng.choice([*scenarios.SCENARIOS, "fuzz"])  # random graphs twice as often
    options: dict[str, Any] = {}
    if name == "race":
        options = {"workers": rng.choice([2, 3]), "runs": rng.choice([50, 100, 200])}
        options["kill_one"] = options["workers"] == 3 and rng.random() < 0.7
    if name == "fuzz":
        options = {"graphs": rng.randint(4, 12), "kill": rng.random() < 0.6}
    return name, options


async def soak(minutes: float, seed: int, directory: Path) -> Totals:
    rng = random.Random(seed)
    totals = Totals()
    server = DevServer(directory / "server", port=free_port(), ui_port=0).start()
    deadline = time.monotonic() + minutes * 60
    try:
        async with SeededReplayers(directory) as replayers:
            while time.monotonic() < deadline:
                name, options = _pick(rng)
                await _round(server, replayers, directory, totals, name, options, rng)
    finally:
        server.stop()
    return totals


async def _round(
    server: DevServer,
    replayers: SeededReplayers,
    directory: Path,
    totals: Totals,
    name: str,
    options: dict[str, Any],
    rng: random.Random,
) -> None:
    tally = totals.per_scenario.setdefault(name, Tally())
    tally.rounds += 1
    round_dir = directory / f"round-{sum(t.rounds for t in totals.per_scenario.values())}"
    round_dir.mkdir()
    harness = Harness(server, round_dir, name[:20])
    started = time.monotonic()
    try:
        await harness.connect()
        scenario = scenarios.SCENARIOS[name]
        anomalies = await run_scenario(
            harness, replayers, scenario, rng.randrange(2**32), **options
        )
    except Exception as exc:  # a scenario that blows up is an anomaly, not the end
        anomalies = [f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"]
    finally:
        await harness.close()
    took = time.monotonic() - started
    runs = sum(harness.statuses.values())
    tally.runs += runs
    tally.anomalies += len(anomalies)
    tally.seconds += took
    totals.started += runs
    totals.ended.update(harness.statuses)
    totals.faults.update(harness.faults)
    totals.anomalies += [f"[{name}] {anomaly}" for anomaly in anomalies]
    described = ", ".join(f"{k}={v}" for k, v in options.items())
    faults = sum(harness.faults.values())
    print(
        f"{name}({described}): {runs} runs, {faults} faults, {len(anomalies)} anomalies, "
        f"{took:.1f}s",
        flush=True,
    )
    for anomaly in anomalies:
        print(f"    ANOMALY {anomaly}", flush=True)


def report(totals: Totals, minutes: float, seed: int) -> str:
    lines = [
        f"chaos soak: {minutes:g} min, seed {seed}",
        f"runs started:    {totals.started}",
        f"runs completed:  {totals.ended.get('completed', 0)} "
        f"(cancelled as declared: {totals.ended.get('cancelled', 0)}, "
        f"failed: {totals.ended.get('failed', 0)}, stuck: {totals.ended.get('stuck', 0)})",
        f"faults injected: {sum(totals.faults.values())} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(totals.faults.items())) or 'none'})",
        f"anomalies:       {len(totals.anomalies)} (target 0)",
        "",
        f"{'scenario':<28} {'rounds':>6} {'runs':>6} {'anomalies':>9} {'s/round':>8}",
    ]
    for name, tally in sorted(totals.per_scenario.items()):
        lines.append(
            f"{name:<28} {tally.rounds:>6} {tally.runs:>6} {tally.anomalies:>9} "
            f"{tally.seconds / tally.rounds:>8.1f}"
        )
    return "\n".join(lines)


def _quiet_core() -> None:
    """The SDK's core logs every retried call to stdout: expected noise while the soak
    restarts the server. Keep errors only."""
    telemetry = TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter("ERROR", "ERROR")))
    Runtime.set_default(Runtime(telemetry=telemetry))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--keep", type=Path, help="keep ledgers, logs and histories here")
    arguments = parser.parse_args()
    _quiet_core()
    seed = arguments.seed if arguments.seed is not None else random.randrange(2**31)
    directory = Path(tempfile.mkdtemp(prefix="chaos-soak-"))
    try:
        totals = asyncio.run(soak(arguments.minutes, seed, directory))
    finally:
        if arguments.keep:
            shutil.copytree(directory, arguments.keep, dirs_exist_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
    print()
    print(report(totals, arguments.minutes, seed))
    return 1 if totals.anomalies else 0


if __name__ == "__main__":
    sys.exit(main())
