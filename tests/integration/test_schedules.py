"""Schedules on the dev server: scheduled runs are ordinary executions; pause, resume,
trigger, backfill, overlap policies, describe, delete, and validation."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.worker import Worker

from engine import AdvancedPluginOrchestrator, PluginError, PluginErrorCode
from engine.client.schedules import ScheduleDetails
from engine.language.models import WorkflowExecutionMode, WorkflowExecutionStatus
from tests.helpers.builders import chain, node, workflow
from tests.helpers.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")
Code = PluginErrorCode


async def _describe(orch: AdvancedPluginOrchestrator, schedule_id: str) -> ScheduleDetails:
    return await orch.describe_schedule(schedule_id)


async def _runs(orch: AdvancedPluginOrchestrator, schedule_id: str, count: int) -> ScheduleDetails:
    return await eventually(
        lambda: _describe(orch, schedule_id),
        lambda d: len(d.recent_runs) >= count,
        timeout=20,
    )


async def test_interval_runs_are_ordinary_executions(
    orchestrator: AdvancedPluginOrchestrator, worker: Worker, unique
) -> None:
    workflow_id = unique("every_second")
    await orchestrator.register_workflow(chain(workflow_id, 1))
    schedule_id = await orchestrator.create_schedule(
        workflow_id, interval=1, input_data={"x": 7}, schedule_id=unique("sched")
    )
    details = await _runs(orchestrator, schedule_id, 2)
    assert details.workflow_id == workflow_id
    assert details.interval_seconds == 1.0
    assert details.overlap == "skip"
    assert details.input_data == {"x": 7}
    assert details.workflow_version == 1
    assert details.next_action_times
    assert not details.paused
    await orchestrator.pause_schedule(schedule_id, "enough")

    execution_id = details.recent_runs[0].execution_id
    assert execution_id.startswith(f"{workflow_id}/run-s")
    context = await orchestrator.wait_for_completion(execution_id, timeout=20)
    assert context.status is WorkflowExecutionStatus.Completed
    assert context.execution_data["results"]["n0"]["inputs"] == {"x": 7}
    events = [event.type.value async for event in orchestrator.events(execution_id)]
    assert events[0] == "workflow_started"
    assert events[-1] == "workflow_completed"
    listed = await eventually(
        lambda: orchestrator.list_executions(workflow_id),
        lambda rows: execution_id in {row.execution_id for row in rows},
    )
    assert all(row.workflow_id == workflow_id for row in listed)

    schedules = await eventually(
        lambda: orchestrator.list_schedules(workflow_id),
        lambda rows: bool(rows) and rows[0].paused,
    )
    assert [s.schedule_id for s in schedules] == [schedule_id]
    assert schedules[0].note == "enough"

    # A change of the definition reaches the schedule; unregistering waits for its deletion.
    updated = chain(workflow_id, 2)
    await orchestrator.update_workflow(updated)
    assert (await orchestrator.describe_schedule(schedule_id)).workflow_version == 2
    with pytest.raises(PluginError) as refused:
        await orchestrator.unregister_workflow(workflow_id)
    assert refused.value.code is Code.InvalidState
    assert schedule_id in refused.value.message

    await orchestrator.delete_schedule(schedule_id)
    with pytest.raises(PluginError) as gone:
        await orchestrator.describe_schedule(schedule_id)
    assert gone.value.code is Code.ScheduleNotFound
    await eventually(lambda: orchestrator.list_schedules(workflow_id), lambda rows: rows == [])
    await orchestrator.unregister_workflow(workflow_id)


async def test_pause_resume_trigger_and_backfill(
    orchestrator: AdvancedPluginOrchestrator, worker: Worker, unique
) -> None:
    workflow_id = unique("hourly")
    await orchestrator.register_workflow(chain(workflow_id, 1))
    schedule_id = await orchestrator.create_schedule(
        workflow_id, interval=timedelta(hours=1), paused=True, note="not yet"
    )
    assert schedule_id.startswith(f"{workflow_id}-")
    details = await orchestrator.describe_schedule(schedule_id)
    assert details.paused
    assert details.note == "not yet"
    assert details.recent_runs == []

    # Trigger starts a run now, even while paused.
    await orchestrator.trigger_schedule(schedule_id)
    details = await _runs(orchestrator, schedule_id, 1)
    triggered = details.recent_runs[0].execution_id
    assert (await orchestrator.wait_for_completion(triggered, timeout=20)).status is (
        WorkflowExecutionStatus.Completed
    )
    await orchestrator.resume_schedule(schedule_id)
    assert not (await orchestrator.describe_schedule(schedule_id)).paused
    await orchestrator.pause_schedule(schedule_id)
    assert (await orchestrator.describe_schedule(schedule_id)).paused

    # An hourly schedule over five hours of the past: five runs, one per hour.
    start = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    await orchestrator.backfill_schedule(
        schedule_id, start, start + timedelta(hours=5) - timedelta(seconds=1), overlap="allow_all"
    )
    details = await _runs(orchestrator, schedule_id, 6)
    backfilled = [run for run in details.recent_runs if run.execution_id != triggered]
    assert len(backfilled) == 5
    assert sorted(run.scheduled_at for run in backfilled) == [
        (start + timedelta(hours=hour)).isoformat().replace("+00:00", "Z") for hour in range(5)
    ]
    for run in backfilled:
        context = await orchestrator.wait_for_completion(run.execution_id, timeout=20)
        assert context.status is WorkflowExecutionStatus.Completed
    await orchestrator.delete_schedule(schedule_id)


async def _triggered_thrice(
    orch: AdvancedPluginOrchestrator, workflow_id: str, overlap: str, expected: int
) -> ScheduleDetails:
    """Three triggers in a row of a paused schedule whose runs take 2 s; wait until the
    schedule has taken ``expected`` actions and none runs."""
    schedule_id = await orch.create_schedule(
        workflow_id,
        interval=3600,
        overlap=overlap,  # type: ignore[arg-type]
        paused=True,
        schedule_id=f"{workflow_id}-{overlap}",
    )
    for _ in range(3):
        await orch.trigger_schedule(schedule_id)
    return await _settled(orch, schedule_id, expected)


async def _every_second(
    orch: AdvancedPluginOrchestrator, workflow_id: str, overlap: str, expected: int
) -> ScheduleDetails:
    """A schedule every second of runs that take 2 s, paused after ``expected`` actions
    (taken or skipped)."""
    schedule_id = await orch.create_schedule(
        workflow_id,
        interval=1,
        overlap=overlap,  # type: ignore[arg-type]
        schedule_id=f"{workflow_id}-every-{overlap}",
    )
    await eventually(
        lambda: orch.describe_schedule(schedule_id),
        lambda d: d.actions_taken + d.skipped_for_overlap >= expected,
        timeout=20,
    )
    await orch.pause_schedule(schedule_id)
    return await _settled(orch, schedule_id, 1)


async def _settled(
    orch: AdvancedPluginOrchestrator, schedule_id: str, expected: int
) -> ScheduleDetails:
    details = await eventually(
        lambda: orch.describe_schedule(schedule_id),
        lambda d: d.actions_taken >= expected and not d.running,
        timeout=25,
    )
    await orch.delete_schedule(schedule_id)
    return details


async def _cancelled_run(orch: AdvancedPluginOrchestrator, workflow_id: str) -> None:
    """A triggered run is cancelled like any execution."""
    schedule_id = await orch.create_schedule(
        workflow_id, interval=3600, paused=True, schedule_id=f"{workflow_id}-cancelled"
    )
    await orch.trigger_schedule(schedule_id)
    details = await _runs(orch, schedule_id, 1)
    execution_id = details.recent_runs[0].execution_id
    await eventually(
        lambda: orch.get_node_status(execution_id, "nap"), lambda s: s["status"] == "running"
    )
    assert execution_id in await orch.get_active_executions()
    await orch.cancel_execution(execution_id)
    context = await orch.wait_for_completion(execution_id, timeout=20)
    assert context.status is WorkflowExecutionStatus.Cancelled
    await orch.delete_schedule(schedule_id)


async def test_overlap_policies(
    orchestrator: AdvancedPluginOrchestrator, worker: Worker, unique
) -> None:
    workflow_id = unique("slow")
    await orchestrator.register_workflow(
        workflow(
            workflow_id,
            [node("nap", "sleep", seconds=2.0)],
            mode=WorkflowExecutionMode.Sequential,
        )
    )
    skip, allow, every_skip, every_buffer, every_allow, _ = await asyncio.gather(
        _triggered_thrice(orchestrator, workflow_id, "skip", 1),
        _triggered_thrice(orchestrator, workflow_id, "allow_all", 3),
        _every_second(orchestrator, workflow_id, "skip", 4),
        _every_second(orchestrator, workflow_id, "buffer_one", 4),
        _every_second(orchestrator, workflow_id, "allow_all", 3),
        _cancelled_run(orchestrator, workflow_id),
    )
    # skip: the first run only; the other two triggers came while it ran.
    assert skip.actions_taken == 1
    assert skip.skipped_for_overlap == 2
    # allow_all: three runs, each an execution of its own, side by side.
    assert allow.actions_taken == 3
    assert len({run.execution_id for run in allow.recent_runs}) == 3
    assert await _overlapping(orchestrator, allow) >= 1
    # Every second with 2 s runs: skip leaves out the times a run is still going ...
    assert every_skip.skipped_for_overlap >= 1
    assert await _overlapping(orchestrator, every_skip) == 0
    # ... buffer_one keeps one waiting, started when the run before it ended, and drops
    # the others ...
    assert every_buffer.skipped_for_overlap >= 1
    assert every_buffer.actions_taken >= 2
    assert await _overlapping(orchestrator, every_buffer) == 0
    # ... and allow_all starts them all, side by side.
    assert every_allow.skipped_for_overlap == 0
    assert every_allow.actions_taken >= 3
    assert await _overlapping(orchestrator, every_allow) >= 1


async def _overlapping(orch: AdvancedPluginOrchestrator, details: ScheduleDetails) -> int:
    """How many of the schedule's runs started before the one before them ended."""
    runs = sorted(details.recent_runs, key=lambda run: run.started_at)
    overlapping = 0
    for earlier, later in itertools.pairwise(runs):
        context = await orch.wait_for_completion(earlier.execution_id, timeout=20)
        assert context.status is WorkflowExecutionStatus.Completed
        assert context.end_time is not None
        overlapping += datetime.fromisoformat(later.started_at) < context.end_time
    return overlapping


async def test_validation(orchestrator: AdvancedPluginOrchestrator, worker: Worker, unique) -> None:
    workflow_id = unique("checked")
    await orchestrator.register_workflow(chain(workflow_id, 1))

    async def refused(code: Code, fragment: str, **kwargs) -> None:
        with pytest.raises(PluginError) as info:
            await orchestrator.create_schedule(kwargs.pop("workflow_id", workflow_id), **kwargs)
        assert info.value.code is code, info.value.message
        assert fragment in info.value.message

    await refused(Code.WorkflowNotFound, "missing", workflow_id=unique("missing"), interval=5)
    await refused(Code.InvalidInput, "exactly one of cron and interval")
    await refused(
        Code.InvalidInput, "exactly one of cron and interval", cron="* * * * *", interval=5
    )
    await refused(Code.InvalidInput, "interval must be between", interval=-5)
    await refused(Code.InvalidInput, "interval must be between", interval=0.2)
    await refused(Code.InvalidInput, "whole number of seconds", interval=1.5)
    await refused(Code.InvalidInput, "must be a number of seconds", interval="5")  # type: ignore[arg-type]
    await refused(Code.InvalidInput, "cron 'every minute'", cron="every minute")
    await refused(Code.InvalidInput, "is not valid", cron="61 * * * *")
    await refused(Code.InvalidInput, "Mars/Olympus", cron="0 * * * *", time_zone="Mars/Olympus")
    await refused(Code.InvalidInput, "cron schedules only", interval=5, time_zone="UTC")
    await refused(Code.InvalidInput, "'sometimes' is not one of", interval=5, overlap="sometimes")
    await refused(Code.InvalidInput, "catchup_window", interval=5, catchup_window=1)
    await refused(Code.InvalidInput, "jitter", interval=5, jitter=-1)
    await refused(Code.InvalidInput, "input_data must be a JSON object", interval=5, input_data=[1])
    await refused(Code.InvalidInput, "schedule_id", interval=5, schedule_id="has space")

    schedule_id = await orchestrator.create_schedule(
        workflow_id, cron="0 6 * * 1-5", time_zone="Europe/Paris", paused=True
    )
    details = await orchestrator.describe_schedule(schedule_id)
    assert details.cron == "0 6 * * 1-5"
    assert details.time_zone == "Europe/Paris"
    first = datetime.fromisoformat(details.next_action_times[0])
    paris = first.astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (6, 0)
    assert paris.weekday() < 5
    await refused(Code.ScheduleAlreadyExists, "already exists", interval=5, schedule_id=schedule_id)
    for call in (
        orchestrator.trigger_schedule(schedule_id, overlap="never"),  # type: ignore[arg-type]
        orchestrator.backfill_schedule(schedule_id, first, first - timedelta(hours=1)),
        orchestrator.backfill_schedule(schedule_id, first - timedelta(days=400), first),
        orchestrator.pause_schedule(schedule_id, "x" * 5000),
    ):
        with pytest.raises(PluginError) as info:
            await call
        assert info.value.code is Code.InvalidInput
    await orchestrator.delete_schedule(schedule_id)
    for missing in (unique("nothing"), "../etc", ""):
        with pytest.raises(PluginError) as info:
            await orchestrator.describe_schedule(missing)
        assert info.value.code is Code.ScheduleNotFound
    # Another task queue's orchestrator does not see (or touch) this one's schedules.
    other = AdvancedPluginOrchestrator(orchestrator.client, task_queue=unique("tq"))
    kept = await orchestrator.create_schedule(workflow_id, interval=3600, paused=True)
    with pytest.raises(PluginError) as info:
        await other.delete_schedule(kept)
    assert info.value.code is Code.ScheduleNotFound
    assert kept not in {s.schedule_id for s in await other.list_schedules()}
    await orchestrator.delete_schedule(kept)
