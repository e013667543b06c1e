"""Schedules: run a definition on a cron expression or an interval, on Temporal Schedules.

Each schedule is a Temporal Schedule (it shows on Temporal UI's Schedules page) whose action
starts the engine's execution workflow with exactly what
:meth:`~engine.client.orchestrator.AdvancedPluginOrchestrator.execute_workflow` sends: the
same start argument, task queue, search attributes and memo (plus the schedule's id in the
memo). A scheduled run is therefore an ordinary execution: ``get_execution_status``,
``events``, ``list_executions``, ``cancel_execution`` and the rest work on it. Its execution
id is ``<workflow_id>/run-s<8 hex of the schedule id>-<scheduled time>``: Temporal appends the
time the run was due, to the second. Two runs of one schedule due in the same second would
share an id (Temporal then drops the second, or runs it under that id once the first ended):
:func:`trigger_schedule` waits for the next second when the last run is that recent, and
intervals are whole seconds.

Which definition a run uses: the schedule's action holds a snapshot of the definition (and
of the definitions its ``subworkflow`` nodes run), taken when the schedule is created and
taken again whenever the definition is changed through this engine (``update_workflow``,
``add_node_to_workflow`` and the other modifications re-bind the definition's schedules to
the new version, see :func:`rebind`). So a run uses the definition current when it starts,
as Airflow and Conductor do, without the run having to look it up. A definition cannot be
unregistered while schedules run it (``unregister_workflow`` refuses with ``InvalidState``
naming them, :func:`refuse_if_scheduled`): delete its schedules first, and no run ever starts
an unregistered definition.

Schedules of this engine are told apart from others in the namespace by their memo
(:data:`MEMO_KEY`, naming the definition and the task queue): :func:`list_schedules` shows only
those of the orchestrator's task queue, and every other call refuses a schedule that is not
one of them with ``ScheduleNotFound``.

Listing reads Temporal's visibility store, which can lag a moment behind a create or delete;
describing, pausing and the rest read the schedule itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

import structlog
from pydantic import BaseModel
from temporalio.client import (
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionResult,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.validation import MAX_ID_LENGTH, check_id
from engine.runtime.bounds import MAX_COMMENT_CHARS, text_problem
from engine.runtime.contracts import EXECUTION_WORKFLOW, ExecutionInput, execution_id_for
from engine.temporal.translation import from_rpc

if TYPE_CHECKING:
    from temporalio.client import Client

    from engine.client.starts import StartRequest


class AdvancedPluginOrchestrator(Protocol):
    """What schedules need of :class:`~engine.client.orchestrator.AdvancedPluginOrchestrator`."""

    @property
    def client(self) -> Client: ...

    @property
    def task_queue(self) -> str: ...

    async def _start_request(
        self, workflow_id: str, input_data: dict[str, Any] | None
    ) -> StartRequest: ...

    def _check_workflow_id(self, workflow_id: str) -> None: ...


Code = PluginErrorCode
log = structlog.get_logger("engine.client.schedules")

# The schedule's memo entry that marks it as this engine's: {"workflow_id", "task_queue",
# "cron", "interval_seconds", "time_zone"} (cron text is kept here because Temporal stores
# a cron expression as the calendar specs it compiles it to).
MEMO_KEY = "plugin_orchestrator_schedule"

OverlapName = Literal[
    "skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"
]
OVERLAP_POLICIES: dict[str, ScheduleOverlapPolicy] = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
_OVERLAP_NAMES = {policy: name for name, policy in OVERLAP_POLICIES.items()}

MIN_INTERVAL = timedelta(seconds=1)
MAX_INTERVAL = timedelta(days=3660)
# Temporal does not honour a catch-up window below 10 s.
MIN_CATCHUP_WINDOW = timedelta(seconds=10)
MAX_CATCHUP_WINDOW = timedelta(days=366)
MAX_JITTER = timedelta(days=366)
MAX_CRON_CHARS = 200
MAX_TIME_ZONE_CHARS = 64
# A backfill spans at most this long, and for an interval schedule at most this many runs
# (Temporal buffers at most 1,000 actions of a schedule; a cron backfill beyond it is cut
# short by Temporal).
MAX_BACKFILL_SPAN = timedelta(days=366)
MAX_BACKFILL_RUNS = 1000
# Schedules of the namespace looked at by one listing.
MAX_LISTED = 10_000
# Recent runs a description shows (Temporal keeps the last 10).
_RECENT = 10


class ScheduledRun(BaseModel):
    """One run a schedule started."""

    execution_id: str
    scheduled_at: str
    started_at: str


class ScheduleSummary(BaseModel):
    """A schedule as :func:`list_schedules` shows it."""

    schedule_id: str
    workflow_id: str
    cron: str | None = None
    interval_seconds: float | None = None
    time_zone: str | None = None
    paused: bool = False
    note: str = ""
    next_action_times: list[str] = []
    recent_runs: list[ScheduledRun] = []


class ScheduleDetails(ScheduleSummary):
    """A schedule as :func:`describe_schedule` shows it."""

    workflow_version: int | None = None
    overlap: str = "skip"
    catchup_window_seconds: float | None = None
    jitter_seconds: float | None = None
    input_data: dict[str, Any] = {}
    running: list[str] = []
    actions_taken: int = 0
    skipped_for_overlap: int = 0
    missed_catchup_window: int = 0
    created_at: str | None = None
    temporal_schedule_id: str = ""


# -- validation ------------------------------------------------------------------------


def _seconds(field: str, value: float | timedelta | None) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PluginError(
            Code.InvalidInput,
            f"{field} must be a number of seconds or a timedelta, not {type(value).__name__}",
        )
    if not math.isfinite(value):
        raise PluginError(Code.InvalidInput, f"{field} must be a finite number of seconds")
    if abs(value) > MAX_INTERVAL.total_seconds() * 10:
        raise PluginError(Code.InvalidInput, f"{field} of {value:g} seconds is out of range")
    return timedelta(seconds=value)


def _bounded(
    field: str, value: float | timedelta | None, low: timedelta, high: timedelta
) -> timedelta | None:
    delta = _seconds(field, value)
    if delta is not None and not low <= delta <= high:
        raise PluginError(
            Code.InvalidInput,
            f"{field} must be between {low.total_seconds():g} and {high.total_seconds():g} "
            f"seconds, not {delta.total_seconds():g}",
        )
    return delta


def _check_cron(cron: object) -> str:
    if problem := text_problem("cron", cron, MAX_CRON_CHARS):
        raise PluginError(Code.InvalidInput, problem)
    assert isinstance(cron, str)
    text = " ".join(cron.split())
    if not text or not text.isprintable():
        raise PluginError(Code.InvalidInput, f"cron {cron!r} is empty or not printable")
    if not text.startswith("@") and not 5 <= len(text.split()) <= 7:
        raise PluginError(
            Code.InvalidInput,
            f"cron {cron!r} must have 5 fields (minute hour day-of-month month day-of-week), "
            "optionally seconds first and a year last, or be one of @hourly, @daily, "
            "@weekly, @monthly, @yearly, @every <duration>",
        )
    if "CRON_TZ" in text.upper() or text.upper().startswith("TZ="):
        raise PluginError(Code.InvalidInput, "give the cron's time zone as time_zone")
    return text


def _check_time_zone(time_zone: object) -> str:
    if problem := text_problem("time_zone", time_zone, MAX_TIME_ZONE_CHARS):
        raise PluginError(Code.InvalidInput, problem)
    assert isinstance(time_zone, str)
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise PluginError(
            Code.InvalidInput,
            f"time_zone {time_zone!r} is not an IANA time zone name (like 'Europe/Paris' or 'UTC')",
        ) from None
    return time_zone


def overlap_policy(overlap: object, field: str = "overlap") -> ScheduleOverlapPolicy:
    """The Temporal policy named ``overlap``; ``InvalidInput`` for any other name."""
    if not isinstance(overlap, str) or overlap not in OVERLAP_POLICIES:
        raise PluginError(
            Code.InvalidInput,
            f"{field} {str(overlap)[:50]!r} is not one of {', '.join(OVERLAP_POLICIES)}",
        )
    return OVERLAP_POLICIES[overlap]


def _check_schedule_id(schedule_id: object) -> str:
    if not isinstance(schedule_id, str) or (reason := check_id("schedule_id", schedule_id)):
        reason = "schedule_id must be a string" if not isinstance(schedule_id, str) else reason
        raise PluginError(Code.ScheduleNotFound, f"no schedule: {reason}")
    return schedule_id


def _instant(field: str, value: object) -> datetime:
    """An aware datetime (a naive one is taken as UTC)."""
    if not isinstance(value, datetime):
        raise PluginError(
            Code.InvalidInput, f"{field} must be a datetime, not {type(value).__name__}"
        )
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _spec(
    cron: str | None,
    interval: timedelta | None,
    jitter: timedelta | None,
    time_zone: str | None,
) -> ScheduleSpec:
    if cron is not None:
        return ScheduleSpec(cron_expressions=[cron], jitter=jitter, time_zone_name=time_zone)
    assert interval is not None
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)], jitter=jitter)


def action_id(workflow_id: str, schedule_id: str) -> str:
    """The workflow id a schedule's runs start with (Temporal appends ``-<time>``): an
    execution id of the definition, short enough that a long-running one may subscribe to
    its definition's changes."""
    digest = hashlib.sha256(schedule_id.encode()).hexdigest()[:8]
    return execution_id_for(workflow_id, f"s{digest}")


async def _action(
    orch: AdvancedPluginOrchestrator,
    workflow_id: str,
    schedule_id: str,
    input_data: dict[str, Any] | None,
) -> ScheduleActionStartWorkflow:
    request = await orch._start_request(workflow_id, input_data)
    return ScheduleActionStartWorkflow(
        EXECUTION_WORKFLOW,
        request.params,
        id=action_id(workflow_id, schedule_id),
        task_queue=orch.task_queue,
        memo={**request.memo, "schedule_id": schedule_id},
        typed_search_attributes=request.search_attributes or TypedSearchAttributes.empty,
        static_summary=f"{request.static_summary}, schedule {schedule_id}",
    )


# -- the API -----------------------------------------------------------------------------


async def create_schedule(
    orch: AdvancedPluginOrchestrator,
    workflow_id: str,
    *,
    cron: str | None = None,
    interval: float | timedelta | None = None,
    input_data: dict[str, Any] | None = None,
    overlap: OverlapName = "skip",
    catchup_window: float | timedelta | None = None,
    jitter: float | timedelta | None = None,
    time_zone: str | None = None,
    schedule_id: str | None = None,
    paused: bool = False,
    note: str | None = None,
) -> str:
    """Create a schedule; see :meth:`AdvancedPluginOrchestrator.create_schedule`."""
    if (cron is None) == (interval is None):
        raise PluginError(
            Code.InvalidInput, "give exactly one of cron and interval to create a schedule"
        )
    cron_text = _check_cron(cron) if cron is not None else None
    every = _bounded("interval", interval, MIN_INTERVAL, MAX_INTERVAL)
    if every is not None and every.microseconds:
        raise PluginError(
            Code.InvalidInput,
            f"interval must be a whole number of seconds, not {every.total_seconds():g}",
        )
    policy = overlap_policy(overlap)
    catchup = _bounded("catchup_window", catchup_window, MIN_CATCHUP_WINDOW, MAX_CATCHUP_WINDOW)
    jitter_delta = _bounded("jitter", jitter, timedelta(0), MAX_JITTER)
    if time_zone is not None:
        if cron_text is None:
            raise PluginError(
                Code.InvalidInput, "time_zone applies to cron schedules only, not to intervals"
            )
        time_zone = _check_time_zone(time_zone)
    if not isinstance(paused, bool):
        raise PluginError(Code.InvalidInput, "paused must be true or false")
    if note is not None and (problem := text_problem("note", note, MAX_COMMENT_CHARS)):
        raise PluginError(Code.InvalidInput, problem)
    orch._check_workflow_id(workflow_id)
    if schedule_id is None:
        schedule_id = f"{workflow_id[: MAX_ID_LENGTH - 9]}-{uuid.uuid4().hex[:8]}"
    elif reason := check_id("schedule_id", schedule_id):
        raise PluginError(Code.InvalidInput, reason)
    action = await _action(orch, workflow_id, schedule_id, input_data)
    schedule = Schedule(
        action=action,
        spec=_spec(cron_text, every, jitter_delta, time_zone),
        policy=SchedulePolicy(overlap=policy, catchup_window=catchup),
        state=ScheduleState(
            paused=paused, note=note if note is not None else ("paused" if paused else None)
        ),
    )
    memo = {
        MEMO_KEY: {
            "workflow_id": workflow_id,
            "task_queue": orch.task_queue,
            "cron": cron_text,
            "interval_seconds": every.total_seconds() if every is not None else None,
            "time_zone": time_zone,
        }
    }
    subject = f"schedule '{schedule_id}'"
    try:
        await orch.client.create_schedule(schedule_id, schedule, memo=memo)
    except ScheduleAlreadyRunningError:
        raise PluginError(
            Code.ScheduleAlreadyExists, f"{subject} already exists in the namespace"
        ) from None
    except RPCError as exc:
        if exc.status is RPCStatusCode.INVALID_ARGUMENT:
            what = f"cron {cron_text!r}" if cron_text is not None else subject
            raise PluginError(Code.InvalidInput, f"{what} is not valid: {exc.message}") from None
        raise from_rpc(exc, subject, Code.ScheduleNotFound) from None
    return schedule_id


async def list_schedules(
    orch: AdvancedPluginOrchestrator, workflow_id: str | None = None
) -> list[ScheduleSummary]:
    """This task queue's schedules (of one definition if given), sorted by id."""
    if workflow_id is not None and (reason := check_id("workflow_id", workflow_id)):
        raise PluginError(Code.InvalidInput, f"workflow_id filter: {reason}")
    found: list[ScheduleSummary] = []
    seen = 0
    try:
        async for entry in await orch.client.list_schedules(page_size=500):
            seen += 1
            if seen > MAX_LISTED:
                log.warning("listing stopped early", looked_at=MAX_LISTED)
                break
            try:
                mark = _mark(await entry.memo())
            except Exception:  # another application's memo this converter cannot read
                continue
            if mark is None or mark.get("task_queue") != orch.task_queue:
                continue
            if workflow_id is not None and mark.get("workflow_id") != workflow_id:
                continue
            summary = _summary(entry.id, mark)
            if entry.schedule is not None:
                summary.paused = entry.schedule.state.paused
                summary.note = entry.schedule.state.note or ""
            if entry.info is not None:
                summary.next_action_times = [_iso(t) for t in entry.info.next_action_times]
                summary.recent_runs = _runs(entry.info.recent_actions)
            found.append(summary)
    except RPCError as exc:
        raise from_rpc(exc, "listing schedules", Code.ScheduleNotFound) from None
    return sorted(found, key=lambda s: s.schedule_id)


async def describe_schedule(orch: AdvancedPluginOrchestrator, schedule_id: str) -> ScheduleDetails:
    """The schedule with its next and recent runs."""
    handle, description, mark = await _ours(orch, schedule_id)
    schedule = description.schedule
    info = description.info
    details = ScheduleDetails(**_summary(schedule_id, mark).model_dump())
    details.paused = schedule.state.paused
    details.note = schedule.state.note or ""
    details.overlap = _OVERLAP_NAMES.get(schedule.policy.overlap, str(schedule.policy.overlap))
    catchup = schedule.policy.catchup_window
    details.catchup_window_seconds = catchup.total_seconds() if catchup else None
    jitter = schedule.spec.jitter
    details.jitter_seconds = jitter.total_seconds() if jitter else None
    details.next_action_times = [_iso(t) for t in info.next_action_times]
    details.recent_runs = _runs(info.recent_actions)
    details.running = [
        run.workflow_id
        for run in info.running_actions
        if isinstance(run, ScheduleActionExecutionStartWorkflow)
    ]
    details.actions_taken = info.num_actions
    details.skipped_for_overlap = info.num_actions_skipped_overlap
    details.missed_catchup_window = info.num_actions_missed_catchup_window
    details.created_at = _iso(info.created_at)
    details.temporal_schedule_id = handle.id
    params = await _params(orch, schedule.action)
    if params is not None:
        details.workflow_version = params.workflow.version
        details.input_data = params.input_data
    return details


async def pause_schedule(
    orch: AdvancedPluginOrchestrator, schedule_id: str, note: str | None = None
) -> None:
    """Start no run until resumed (runs already started go on)."""
    if note is not None and (problem := text_problem("note", note, MAX_COMMENT_CHARS)):
        raise PluginError(Code.InvalidInput, problem)
    handle, _, _ = await _ours(orch, schedule_id)
    await _call(handle.pause(note=note or "paused"), schedule_id)


async def resume_schedule(
    orch: AdvancedPluginOrchestrator, schedule_id: str, note: str | None = None
) -> None:
    """Start runs again from the next scheduled time (missed ones are not caught up)."""
    if note is not None and (problem := text_problem("note", note, MAX_COMMENT_CHARS)):
        raise PluginError(Code.InvalidInput, problem)
    handle, _, _ = await _ours(orch, schedule_id)
    await _call(handle.unpause(note=note or "resumed"), schedule_id)


async def trigger_schedule(
    orch: AdvancedPluginOrchestrator, schedule_id: str, overlap: OverlapName | None = None
) -> None:
    """Start a run now (also while paused), under the schedule's overlap policy or
    ``overlap``."""
    policy = overlap_policy(overlap) if overlap is not None else None
    handle, description, _ = await _ours(orch, schedule_id)
    # Temporal names a run by the second it is due: a second trigger within the same second
    # would name the same execution (and be dropped, or run under that id once the first
    # ended). Wait for the next second when the last run is that recent (by this clock).
    recent = [result.scheduled_at.timestamp() for result in description.info.recent_actions]
    if recent:
        wait = math.floor(max(recent)) + 1.05 - datetime.now(UTC).timestamp()
        if 0 < wait <= 1.05:
            await asyncio.sleep(wait)
    await _call(handle.trigger(overlap=policy), schedule_id)


async def backfill_schedule(
    orch: AdvancedPluginOrchestrator,
    schedule_id: str,
    start: datetime,
    end: datetime,
    overlap: OverlapName | None = None,
) -> None:
    """Take the actions the schedule would have taken between ``start`` and ``end``."""
    start, end = _instant("start", start), _instant("end", end)
    if end <= start:
        raise PluginError(Code.InvalidInput, "backfill end must be after its start")
    if end - start > MAX_BACKFILL_SPAN:
        raise PluginError(
            Code.InvalidInput,
            f"a backfill spans at most {MAX_BACKFILL_SPAN.days} days; split it",
        )
    policy = overlap_policy(overlap) if overlap is not None else None
    handle, description, _ = await _ours(orch, schedule_id)
    intervals = description.schedule.spec.intervals
    if intervals and not description.schedule.spec.cron_expressions:
        every = min(spec.every for spec in intervals)
        runs = (end - start) / every
        if runs > MAX_BACKFILL_RUNS:
            raise PluginError(
                Code.InvalidInput,
                f"the backfill would start about {runs:,.0f} runs; at most "
                f"{MAX_BACKFILL_RUNS:,} at once",
            )
    await _call(handle.backfill(ScheduleBackfill(start, end, overlap=policy)), schedule_id)


async def delete_schedule(orch: AdvancedPluginOrchestrator, schedule_id: str) -> None:
    """Remove the schedule; runs it started go on."""
    handle, _, _ = await _ours(orch, schedule_id)
    await _call(handle.delete(), schedule_id)


# -- definitions and their schedules -----------------------------------------------------


async def rebind(orch: AdvancedPluginOrchestrator, workflow_id: str) -> None:
    """Point the definition's schedules at its current version (after a change): each
    schedule's action is rebuilt with its own input data. A schedule that cannot be updated
    is logged and left on its snapshot; the change itself stands. Listing reads Temporal's
    visibility store: a schedule created a moment before the change may be missed."""
    try:
        scheduled = await list_schedules(orch, workflow_id)
    except PluginError as exc:
        log.warning(
            "cannot list schedules to re-bind them", workflow_id=workflow_id, error=exc.message
        )
        return
    for summary in scheduled:
        try:
            handle, description, _ = await _ours(orch, summary.schedule_id)
            params = await _params(orch, description.schedule.action)
            input_data = params.input_data if params is not None else None
            action = await _action(orch, workflow_id, summary.schedule_id, input_data)

            def update(current: ScheduleUpdateInput, new: Any = action) -> ScheduleUpdate:
                schedule = current.description.schedule
                schedule.action = new
                return ScheduleUpdate(schedule=schedule)

            await _call(handle.update(update), summary.schedule_id)
        except PluginError as exc:
            if exc.code is Code.ScheduleNotFound:
                continue  # deleted meanwhile
            log.warning(
                "schedule keeps the earlier version of its definition",
                schedule_id=summary.schedule_id,
                workflow_id=workflow_id,
                error=exc.message,
            )


async def refuse_if_scheduled(orch: AdvancedPluginOrchestrator, workflow_id: str) -> None:
    """``InvalidState`` naming the definition's schedules, if it has any."""
    scheduled = await list_schedules(orch, workflow_id)
    if scheduled:
        names = ", ".join(s.schedule_id for s in scheduled[:10])
        more = f" and {len(scheduled) - 10} more" if len(scheduled) > 10 else ""
        raise PluginError(
            Code.InvalidState,
            f"workflow '{workflow_id}' is run by schedules {names}{more}; delete them first "
            "(`orchestrator schedule delete ID`)",
            {"schedules": [s.schedule_id for s in scheduled]},
        )


# -- internals ---------------------------------------------------------------------------


def _mark(memo: Mapping[str, Any]) -> dict[str, Any] | None:
    mark = memo.get(MEMO_KEY)
    return mark if isinstance(mark, dict) and isinstance(mark.get("workflow_id"), str) else None


def _summary(schedule_id: str, mark: dict[str, Any]) -> ScheduleSummary:
    interval = mark.get("interval_seconds")
    return ScheduleSummary(
        schedule_id=schedule_id,
        workflow_id=str(mark["workflow_id"]),
        cron=mark.get("cron") if isinstance(mark.get("cron"), str) else None,
        interval_seconds=float(interval) if isinstance(interval, int | float) else None,
        time_zone=mark.get("time_zone") if isinstance(mark.get("time_zone"), str) else None,
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _runs(actions: Any) -> list[ScheduledRun]:
    runs: list[ScheduledRun] = []
    for result in list(actions)[-_RECENT:]:
        if isinstance(result, ScheduleActionResult) and isinstance(
            result.action, ScheduleActionExecutionStartWorkflow
        ):
            runs.append(
                ScheduledRun(
                    execution_id=result.action.workflow_id,
                    scheduled_at=_iso(result.scheduled_at),
                    started_at=_iso(result.started_at),
                )
            )
    return runs


async def _ours(
    orch: AdvancedPluginOrchestrator, schedule_id: str
) -> tuple[ScheduleHandle, ScheduleDescription, dict[str, Any]]:
    """The handle, description and memo mark of one of this task queue's schedules."""
    _check_schedule_id(schedule_id)
    handle = orch.client.get_schedule_handle(schedule_id)
    description: ScheduleDescription = await _call(handle.describe(), schedule_id)
    try:
        mark = _mark(await description.memo())
    except Exception:  # another application's memo this converter cannot read
        mark = None
    if mark is None or mark.get("task_queue") != orch.task_queue:
        raise PluginError(
            Code.ScheduleNotFound,
            f"schedule '{schedule_id}' is not a schedule of this engine on task queue "
            f"'{orch.task_queue}'",
        )
    return handle, description, mark


async def _params(orch: AdvancedPluginOrchestrator, action: Any) -> ExecutionInput | None:
    """The start argument a schedule's action holds."""
    if not isinstance(action, ScheduleActionStartWorkflow) or len(action.args) != 1:
        return None
    try:
        decoded = await orch.client.data_converter.decode(list(action.args), [ExecutionInput])
    except Exception as exc:  # a payload this process cannot decode (another codec key)
        log.warning("cannot read a schedule's action", error=str(exc))
        return None
    params = decoded[0]
    return params if isinstance(params, ExecutionInput) else None


async def _call(request: Any, schedule_id: str) -> Any:
    try:
        return await request
    except RPCError as exc:
        subject = f"schedule '{schedule_id}'"
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise PluginError(Code.ScheduleNotFound, f"{subject} does not exist") from None
        if exc.status is RPCStatusCode.INVALID_ARGUMENT:
            raise PluginError(Code.InvalidInput, f"{subject}: {exc.message}") from None
        raise from_rpc(exc, subject, Code.ScheduleNotFound) from None
