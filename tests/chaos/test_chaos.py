"""Fault injection: each scenario of tests/chaos/scenarios.py against real worker processes
and a real dev server, then the ledger invariant (tests/chaos/invariants.py) and a replay of
every history under two hash seeds. ``bench/chaos_soak.py`` runs them at random for longer.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chaos import scenarios
from tests.chaos.harness import Harness, run_scenario
from tests.chaos.replay import SeededReplayers

SEED = 20240601  # fixed: a test injects its faults at the same moments on every run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def _run(harness: Harness, replayers: SeededReplayers, scenario: Any, **options: Any) -> None:
    anomalies = await run_scenario(harness, replayers, scenario, SEED, **options)
    assert anomalies == [], "\n".join(anomalies)


async def test_worker_killed_in_heartbeating_node(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.worker_killed_heartbeating)


async def test_worker_killed_in_blocking_node(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.worker_killed_blocking)


async def test_worker_killed_while_planning_many_nodes(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.worker_killed_planning)


async def test_worker_killed_in_light_chain(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.worker_killed_in_light_chain)


async def test_sigterm_drains_the_running_node(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.sigterm_drain)


async def test_server_killed_mid_run(own_harness, replayers) -> None:
    await _run(own_harness, replayers, scenarios.server_killed_mid_run)


async def test_server_killed_during_execute_workflow(own_harness, replayers) -> None:
    await _run(own_harness, replayers, scenarios.server_killed_during_start)


async def test_partition_longer_than_heartbeat_timeout(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.partition_zombie)


@pytest.mark.slow
async def test_two_workers_race_200_runs(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.race, workers=2)


@pytest.mark.slow
async def test_three_workers_race_200_runs_one_killed(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.race, workers=3, kill_one=True)


async def test_pause_during_running_node(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.pause_running_node)


async def test_pause_across_worker_restart(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.pause_across_restart)


async def test_cancel_during_retry_backoff(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.cancel_in_backoff)


async def test_cycle_rejected_while_runs_go_on(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.cycle_while_running)


async def test_random_graphs_with_a_worker_killed(harness, replayers) -> None:
    await _run(harness, replayers, scenarios.fuzz, graphs=6, kill=True)
