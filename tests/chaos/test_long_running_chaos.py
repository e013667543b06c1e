"""Worker kills at every lifecycle phase of the long-running modes (tests/chaos/
long_scenarios.py), checked by the engine's counters, the ledger and a replay of every run's
history. The bigger variants (the 400-file storm with four kills, random phase orders) run
in ``make chaos-soak``."""

from __future__ import annotations

from typing import Any

import pytest

from engine import WorkflowExecutionMode
from tests.chaos import long_scenarios
from tests.chaos.harness import Harness, run_scenario
from tests.chaos.replay import SeededReplayers

SEED = 20240602
RETRY_BLOCK = {"max_attempts": 3, "initial_interval": 0.1, "maximum_interval": 0.5}
Mode = WorkflowExecutionMode

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


async def _run(harness: Harness, replayers: SeededReplayers, scenario: Any, **options: Any) -> None:
    anomalies = await run_scenario(harness, replayers, scenario, SEED, **options)
    assert anomalies == [], "\n".join(anomalies)


async def test_event_driven_survives_a_kill_at_every_phase(harness, replayers) -> None:
    await _run(harness, replayers, long_scenarios.long_running_kills, mode=Mode.EventDriven)


async def test_streaming_survives_a_kill_at_every_phase(short_harness, replayers) -> None:
    await _run(
        short_harness,
        replayers,
        long_scenarios.long_running_kills,
        mode=Mode.Streaming,
        retry=RETRY_BLOCK,
    )


async def test_worker_kills_do_not_use_up_a_sources_retry_block(harness, replayers) -> None:
    """A ``retry`` block of 3 attempts, three kills while the source reads, and no
    continue-as-new in between (a new run would start the attempts afresh). Streams share
    the code path; the streaming tour above runs with the same retry block."""
    await _run(
        harness,
        replayers,
        long_scenarios.long_running_kills,
        mode=Mode.EventDriven,
        phases=("running",) * 3,
        retry=RETRY_BLOCK,
        events_per_run=1000,
    )


async def test_file_storm_across_continue_as_new(harness, replayers) -> None:
    await _run(harness, replayers, long_scenarios.file_storm, files=150, kills=2)


@pytest.mark.parametrize("mode", [Mode.EventDriven, Mode.Streaming])
async def test_plugin_errors_still_count_against_the_retries(harness, replayers, mode) -> None:
    await _run(harness, replayers, long_scenarios.failing_source, mode=mode)
