"""``orchestrator schedule create|list|show|pause|resume|trigger|backfill|delete``: run a
definition on a cron expression or an interval (Temporal Schedules, see
:mod:`engine.client.schedules`). Scheduled runs need a worker polling the task queue when they
are due (``orchestrator worker``)."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.base.errors import PluginError
from engine.cli.common import Code, open_session
from engine.cli.runs import _input_data
from engine.client.schedules import ScheduleDetails, ScheduleSummary
from engine.hosting.embedded import embedded_worker, worker_is_polling

_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d)?")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """``90``, ``90s``, ``5m``, ``2h``, ``1d`` as a timedelta."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise PluginError(
            Code.InvalidInput, f"{text!r} is not a duration (like 30, 30s, 5m, 2h or 1d)"
        )
    return timedelta(seconds=float(match["number"]) * _UNITS[match["unit"] or "s"])


def instant(text: str) -> datetime:
    """An ISO 8601 time (UTC unless it names an offset)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PluginError(
            Code.InvalidInput, f"{text!r} is not an ISO 8601 time (like 2026-01-31T06:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def cmd_create(args: argparse.Namespace) -> int:
    input_data = _input_data(args)
    every = duration(args.every) if args.every is not None else None
    async with open_session(args) as session:
        orch = session.orchestrator
        # The definition is read from its registry entity, which needs a worker.
        async with embedded_worker(orch.client, orch.task_queue) as hosted:
            schedule_id = await orch.create_schedule(
                args.workflow_id,
                cron=args.cron,
                interval=every,
                input_data=input_data,
                overlap=args.overlap,
                catchup_window=duration(args.catchup_window) if args.catchup_window else None,
                jitter=duration(args.jitter) if args.jitter else None,
                time_zone=args.time_zone,
                schedule_id=args.id,
                paused=args.paused,
                note=args.note,
            )
            details = await orch.describe_schedule(schedule_id)
        print(f"schedule: {schedule_id}")
        _print_next(details)
        if hosted is not None or not await worker_is_polling(orch.client, orch.task_queue):
            print(
                f"note: runs start only while a worker polls task queue '{orch.task_queue}' "
                "(`orchestrator worker`)"
            )
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        orch = session.orchestrator
        rows = await orch.list_schedules(args.workflow)
    if args.json:
        print(json.dumps([row.model_dump() for row in rows], indent=2))
        return 0
    if not rows:
        where = f" of workflow {args.workflow}" if args.workflow else ""
        print(f"no schedules{where} on task queue '{orch.task_queue}'")
        return 0
    width = max(len(row.schedule_id) for row in rows)
    wf_width = max(len(row.workflow_id) for row in rows)
    print(f"{'schedule':<{width}}  {'workflow':<{wf_width}}  {'when':<20}  {'state':<7}  next run")
    for row in rows:
        state = "paused" if row.paused else "active"
        upcoming = (
            _time(row.next_action_times[0]) if row.next_action_times and not row.paused else "-"
        )
        print(
            f"{row.schedule_id:<{width}}  {row.workflow_id:<{wf_width}}  {_when(row):<20}  "
            f"{state:<7}  {upcoming}"
        )
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        details = await session.orchestrator.describe_schedule(args.schedule_id)
    if args.json:
        print(json.dumps(details.model_dump(), indent=2))
        return 0
    rows: list[tuple[str, Any]] = [
        ("schedule", details.schedule_id),
        ("workflow", f"{details.workflow_id} (version {details.workflow_version or '?'})"),
        ("when", _when(details)),
        ("state", f"paused ({details.note})" if details.paused else "active"),
        ("overlap", details.overlap),
        ("jitter", _span(details.jitter_seconds)),
        ("catch-up", _span(details.catchup_window_seconds)),
        ("input", json.dumps(details.input_data)),
        (
            "actions",
            f"{details.actions_taken} taken, {details.skipped_for_overlap} skipped for overlap, "
            f"{details.missed_catchup_window} missed",
        ),
    ]
    for label, value in rows:
        print(f"{label + ':':<10} {value}")
    _print_next(details)
    if details.running:
        print("running:")
        for execution_id in details.running:
            print(f"  {execution_id}")
    print("recent runs:" if details.recent_runs else "recent runs: none")
    for run in reversed(details.recent_runs):
        print(f"  {_time(run.scheduled_at)}  {run.execution_id}")
    return 0


async def cmd_pause(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        await session.orchestrator.pause_schedule(args.schedule_id, args.note)
    print(f"paused {args.schedule_id}")
    return 0


async def cmd_resume(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        await session.orchestrator.resume_schedule(args.schedule_id, args.note)
    print(f"resumed {args.schedule_id}")
    return 0


async def cmd_trigger(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        await session.orchestrator.trigger_schedule(args.schedule_id, args.overlap)
    print(f"triggered {args.schedule_id} (`orchestrator schedule show {args.schedule_id}`)")
    return 0


async def cmd_backfill(args: argparse.Namespace) -> int:
    start, end = instant(args.start), instant(args.end)
    async with open_session(args) as session:
        await session.orchestrator.backfill_schedule(args.schedule_id, start, end, args.overlap)
    print(f"backfilling {args.schedule_id} from {_time(start)} to {_time(end)}")
    return 0


async def cmd_delete(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        await session.orchestrator.delete_schedule(args.schedule_id)
    print(f"deleted {args.schedule_id}")
    return 0


def _when(schedule: ScheduleSummary) -> str:
    if schedule.cron is not None:
        zone = f" {schedule.time_zone}" if schedule.time_zone else ""
        return f"cron {schedule.cron}{zone}"
    if schedule.interval_seconds is not None:
        return f"every {_span(schedule.interval_seconds)}"
    return "-"


def _span(seconds: float | None) -> str:
    """A duration as --every writes them: 90s, 5m, 2h, 365d (the largest exact unit)."""
    if not seconds:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _time(moment: str | datetime) -> str:
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _print_next(details: ScheduleDetails) -> None:
    if details.paused:
        print("next runs: none while paused")
        return
    times = ", ".join(_time(t) for t in details.next_action_times[:3])
    print(f"next runs: {times or 'none'}")
