"""Recorded histories must keep replaying: changes that would break runs in flight fail here.

Histories are recorded by ``python -m tests.replay.record``. Replays run with no server, in
this process and in fresh processes under two ``PYTHONHASHSEED`` values.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from engine.temporal.sandbox import workflow_runner
from tests.replay.replay_all import load_histories, replayer

ROOT = Path(__file__).resolve().parents[2]
HISTORIES = load_histories()


def test_histories_are_present() -> None:
    assert len(HISTORIES) >= 11


@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: h.workflow_id)
async def test_history_replays(history: WorkflowHistory) -> None:
    await replayer().replay_workflow(history)


@pytest.mark.parametrize("seed", ["0", "4242"])
def test_histories_replay_under_other_hash_seeds(seed: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.replay.replay_all"],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"replayed {len(HISTORIES)} histories" in result.stdout


async def test_a_changed_interpreter_is_caught() -> None:
    from tests.replay.broken_workflow import ChangedExecution

    history = next(h for h in HISTORIES if h.workflow_id == "sequential_chain")
    changed = Replayer(
        workflows=[ChangedExecution],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    with pytest.raises(NondeterminismError):
        await changed.replay_workflow(history)
