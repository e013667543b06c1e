"""Random fault-injection scenarios for a set time, with figures.

    python -m bench.chaos_soak --minutes 10 [--seed N] [--lanes 3] [--keep DIR]

Starts one dev server (SQLite file in a temporary directory), a second one that suggests
continue-as-new after a few dozen history events (for streams draining for
continue-as-new), and the seeded replayer processes, then runs scenarios of
tests/chaos/scenarios.py and tests/chaos/long_scenarios.py picked at random in ``--lanes``
concurrent lanes, each round on a task queue of its own with fresh worker processes, with
fault timings and options drawn from the seed: worker SIGKILL and SIGTERM, server SIGKILL and
restart (on a server of the round's own), network partitions and slow links, pause, cancel
and rejected modifications, random graphs, and EventDriven and Streaming executions taken
through random sequences of lifecycle phases (running, pausing, paused, resuming,
switching version, draining for continue-as-new, cancelling) with a worker killed at each.
After every round the invariants (tests/chaos/invariants.py, long_invariants.py) are checked
and every history is replayed under two hash seeds. Prints one line per round and the
totals: runs started and completed, faults injected (and the rate: the long-running tours
inject most of them, so 1,000 faults take about an hour), anomalies (the target is 0) and
counts per scenario. Exits 1 on any anomaly.
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

from engine import WorkflowExecutionMode
from engine.hosting.devserver import DevServer, free_port
from tests.chaos import long_scenarios, scenarios
from tests.chaos.harness import SHORT_HISTORY, Harness, run_scenario
from tests.chaos.replay import SeededReplayers
from tests.helpers.servers import configured_server

SCENARIOS: dict[str, Any] = {**scenarios.SCENARIOS, **long_scenarios.LONG_SCENARIOS}
# Scenarios that kill the server: each round gets a server of its own (the other lanes go on).
SERVER_KILLERS = frozenset({"server_killed_mid_run", "server_killed_during_start"})
LONG_RUNNING = [WorkflowExecutionMode.EventDriven, WorkflowExecutionMode.Streaming]
# How often each scenario is drawn: a long-running tour injects a fault every few seconds,
# a batch scenario one or two a round.
WEIGHTS = {
    **dict.fromkeys(scenarios.SCENARIOS, 1),
    "fuzz": 2,
    "long_running_kills": 12,
    "file_storm": 3,
    "failing_source": 1,
}


@dataclass
class Tally:
    rounds: int = 0
    runs: int = 0
    faults: int = 0
    anomalies: int = 0
    seconds: float = 0.0


@dataclass
class Totals:
    rounds: int = 0
    seconds: float = 0.0
    started: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    anomalies: list[str] = field(default_factory=list)
    per_scenario: dict[str, Tally] = field(default_factory=dict)


def _pick(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A scenario (drawn by :data:`WEIGHTS`) and its options."""
    name = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    options: dict[str, Any] = {}
    if name == "race":
        options = {"workers": rng.choice([2, 3]), "runs": rng.choice([50, 100, 200])}
        options["kill_one"] = options["workers"] == 3 and rng.random() < 0.7
    if name == "fuzz":
        options = {"graphs": rng.randint(4, 12), "kill": rng.random() < 0.6}
    if name == "long_running_kills":
        options = _tour(rng)
    if name == "file_storm":
        options = {"files": rng.choice([150, 400]), "kills": rng.randint(2, 6)}
    if name == "failing_source":
        options = {"mode": rng.choice(LONG_RUNNING)}
    return name, options


def _tour(rng: random.Random) -> dict[str, Any]:
    """A random sequence of 6-16 lifecycle phases, a worker killed at each; sometimes with
    a user's retry block of 3 attempts (the kills must not use it up)."""
    mode = rng.choice(LONG_RUNNING)
    once = [p for p in long_scenarios.PHASES if p != "cancelling"]
    phases = [rng.choice(once) for _ in range(rng.randint(6, 16))]
    if rng.random() < 0.5:
        phases.insert(rng.randrange(len(phases) + 1), "cancelling")
    options: dict[str, Any] = {"mode": mode, "phases": tuple(phases)}
    if rng.random() < 0.3:
        options["retry"] = {"max_attempts": 3, "initial_interval": 0.1, "maximum_interval": 0.5}
    return options


@dataclass
class Servers:
    """The soak's servers: the main one and the short-history one."""

    main: DevServer
    short: DevServer
    directory: Path


async def soak(minutes: float, seed: int, directory: Path, lanes: int = 3) -> Totals:
    rng = random.Random(seed)
    totals = Totals()
    start = time.monotonic()
    deadline = start + minutes * 60
    main = DevServer(directory / "server", port=free_port(), ui_port=0).start()
    try:
        with configured_server(directory / "short-server", **SHORT_HISTORY) as short:
            servers = Servers(main, short, directory)
            async with SeededReplayers(directory) as replayers:

                async def lane() -> None:
                    while time.monotonic() < deadline:
                        name, options = _pick(rng)
                        await _round(servers, replayers, totals, name, options, rng)

                await asyncio.gather(*(lane() for _ in range(lanes)))
    finally:
        main.stop()
    totals.seconds = time.monotonic() - start
    return totals


async def _round(
    servers: Servers,
    replayers: SeededReplayers,
    totals: Totals,
    name: str,
    options: dict[str, Any],
    rng: random.Random,
) -> None:
    tally = totals.per_scenario.setdefault(name, Tally())
    tally.rounds += 1
    totals.rounds += 1
    round_dir = servers.directory / f"round-{totals.rounds}"
    round_dir.mkdir()
    own_server = None
    server, short = servers.main, long_scenarios.needs_short_history(name, options)
    if short:
        server = servers.short
    elif name in SERVER_KILLERS:
        own_server = DevServer(round_dir / "server", port=free_port(), ui_port=0)
        server = await asyncio.to_thread(own_server.start)
    harness = Harness(server, round_dir, name[:20], short_history=short)
    started = time.monotonic()
    try:
        await harness.connect()
        anomalies = await run_scenario(
            harness, replayers, SCENARIOS[name], rng.randrange(2**32), **options
        )
    except Exception as exc:  # a scenario that blows up is an anomaly, not the end
        anomalies = [f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"]
    finally:
        await harness.close()
        if own_server is not None:
            own_server.kill()
    took = time.monotonic() - started
    runs = sum(harness.statuses.values())
    tally.runs += runs
    tally.anomalies += len(anomalies)
    tally.seconds += took
    tally.faults += sum(harness.faults.values())
    totals.started += runs
    totals.ended.update(harness.statuses)
    totals.faults.update(harness.faults)
    totals.anomalies += [f"[{name}] {anomaly}" for anomaly in anomalies]
    described = ", ".join(f"{k}={_short(v)}" for k, v in options.items())
    faults = sum(harness.faults.values())
    print(
        f"{name}({described}): {runs} runs, {faults} faults, {len(anomalies)} anomalies, "
        f"{took:.1f}s",
        flush=True,
    )
    for anomaly in anomalies:
        print(f"    ANOMALY {anomaly}", flush=True)


def _short(value: Any) -> str:
    if isinstance(value, tuple):
        return "/".join(str(v) for v in value)
    if isinstance(value, WorkflowExecutionMode):
        return value.value
    return str(value)


def report(totals: Totals, minutes: float, seed: int) -> str:
    faults = sum(totals.faults.values())
    per_minute = faults / max(totals.seconds / 60, 1e-9)
    thousand = f"{1000 / per_minute:.0f} min" if per_minute else "never"
    lines = [
        f"chaos soak: {minutes:g} min (ran {totals.seconds / 60:.1f}), seed {seed}",
        f"rounds:          {totals.rounds}",
        f"runs started:    {totals.started}",
        f"runs completed:  {totals.ended.get('completed', 0)} "
        f"(cancelled as declared: {totals.ended.get('cancelled', 0)}, "
        f"failed: {totals.ended.get('failed', 0)}, stuck: {totals.ended.get('stuck', 0)})",
        f"faults injected: {faults}, {per_minute:.1f} a minute (1,000 faults in {thousand})",
        *(f"    {kind}: {count}" for kind, count in sorted(totals.faults.items())),
        f"anomalies:       {len(totals.anomalies)} (target 0)",
        "",
        f"{'scenario':<28} {'rounds':>6} {'runs':>6} {'faults':>6} {'anomalies':>9} {'s/round':>8}",
    ]
    for name, tally in sorted(totals.per_scenario.items()):
        lines.append(
            f"{name:<28} {tally.rounds:>6} {tally.runs:>6} {tally.faults:>6} "
            f"{tally.anomalies:>9} {tally.seconds / tally.rounds:>8.1f}"
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
    parser.add_argument("--lanes", type=int, default=3, help="rounds run at once (default 3)")
    parser.add_argument("--keep", type=Path, help="keep ledgers, logs and histories here")
    arguments = parser.parse_args()
    _quiet_core()
    seed = arguments.seed if arguments.seed is not None else random.randrange(2**31)
    directory = Path(tempfile.mkdtemp(prefix="chaos-soak-"))
    try:
        totals = asyncio.run(soak(arguments.minutes, seed, directory, arguments.lanes))
    finally:
        if arguments.keep:
            shutil.copytree(directory, arguments.keep, dirs_exist_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
    print()
    print(report(totals, arguments.minutes, seed))
    return 1 if totals.anomalies else 0


if __name__ == "__main__":
    sys.exit(main())
