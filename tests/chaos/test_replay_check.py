"""The chaos suite's seeded replayers catch what they must: a recorded history replays
under both hash seeds, and the same history with one activity renamed fails under both."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import WorkflowHistory

from tests.chaos.replay import SEEDS, SeededReplayers
from tests.replay.replay_all import HISTORIES


def _history(rename_first_activity: bool) -> WorkflowHistory:
    data = json.loads((HISTORIES / "sequential_chain.json").read_text())
    if rename_first_activity:
        scheduled = next(
            e for e in data["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
        )
        scheduled["activityTaskScheduledEventAttributes"]["activityId"] = "renamed"
    return WorkflowHistory.from_json("sequential_chain", data)


async def test_replayers_pass_and_fail_as_they_should(
    replayers: SeededReplayers, tmp_path: Path
) -> None:
    assert await replayers.replay([_history(False)], tmp_path / "good.json") == []
    failures = await replayers.replay([_history(True)], tmp_path / "bad.json")
    assert len(failures) == len(SEEDS), failures
    assert all("renamed" in failure or "ondetermin" in failure for failure in failures), failures


async def test_a_dead_replayer_is_reported_and_replaced(
    replayers: SeededReplayers, tmp_path: Path
) -> None:
    replayers._processes[0].kill()
    failures = await replayers.replay([_history(False)], tmp_path / "first.json")
    assert len(failures) == 2, failures  # replayed 0/1, and why
    assert "the replayer died" in failures[-1], failures
    assert await replayers.replay([_history(False)], tmp_path / "again.json") == []
