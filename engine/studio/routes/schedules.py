"""Schedules: list, create, read, pause, resume, trigger, backfill and delete them (Temporal
Schedules, see :mod:`engine.client.schedules`). Every request passes the studio's guard like
any other ``/api`` route: token, JSON content type on changes, body size."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Query
from pydantic import Field

from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.client.schedules import MAX_CRON_CHARS, MAX_TIME_ZONE_CHARS, OverlapName
from engine.runtime.bounds import MAX_COMMENT_CHARS
from engine.studio.api import RequestBody

_MAX_SECONDS = 10 * 366 * 86400.0


class CreateSchedule(RequestBody):
    """``POST /workflows/{id}/schedules``: exactly one of ``cron`` and ``interval_seconds``."""

    cron: str | None = Field(None, max_length=MAX_CRON_CHARS)
    interval_seconds: float | None = Field(None, allow_inf_nan=False, le=_MAX_SECONDS)
    input_data: dict[str, Any] | None = None
    overlap: OverlapName = "skip"
    catchup_window_seconds: float | None = Field(None, allow_inf_nan=False, le=_MAX_SECONDS)
    jitter_seconds: float | None = Field(None, allow_inf_nan=False, le=_MAX_SECONDS)
    time_zone: str | None = Field(None, max_length=MAX_TIME_ZONE_CHARS)
    schedule_id: str | None = Field(None, max_length=200)
    paused: bool = False
    note: str | None = Field(None, max_length=MAX_COMMENT_CHARS)


class NoteBody(RequestBody):
    """``POST /schedules/{id}/pause|resume``."""

    note: str | None = Field(None, max_length=MAX_COMMENT_CHARS)


class TriggerBody(RequestBody):
    """``POST /schedules/{id}/trigger``."""

    overlap: OverlapName | None = None


class BackfillBody(RequestBody):
    """``POST /schedules/{id}/backfill``: ISO 8601 times (UTC unless an offset is given)."""

    start: datetime
    end: datetime
    overlap: OverlapName | None = None


def router(orch: AdvancedPluginOrchestrator, *, ui_url: str | None = None) -> APIRouter:
    """The routes of schedules: ``/schedules``, ``/schedules/{id}`` and its actions, and
    ``POST /workflows/{id}/schedules``; with ``ui_url`` (Temporal UI's base URL) a schedule's
    description links to its page in the Temporal UI."""
    routes = APIRouter()

    async def described(schedule_id: str) -> dict[str, Any]:
        details = (await orch.describe_schedule(schedule_id)).model_dump()
        details["temporal_ui"] = None
        if ui_url:
            namespace = quote(orch.client.namespace, safe="")
            details["temporal_ui"] = (
                f"{ui_url.rstrip('/')}/namespaces/{namespace}/schedules/"
                f"{quote(schedule_id, safe='')}"
            )
        return details

    @routes.get("/schedules")
    async def list_schedules(
        workflow_id: Annotated[str | None, Query(max_length=200)] = None,
    ) -> list[dict[str, Any]]:
        """This task queue's schedules (of one definition if given), by id."""
        return [row.model_dump() for row in await orch.list_schedules(workflow_id or None)]

    @routes.post("/workflows/{workflow_id}/schedules", status_code=201)
    async def create_schedule(workflow_id: str, body: CreateSchedule) -> dict[str, Any]:
        """Create a schedule of the definition; answers its description."""
        schedule_id = await orch.create_schedule(
            workflow_id,
            cron=body.cron,
            interval=body.interval_seconds,
            input_data=body.input_data,
            overlap=body.overlap,
            catchup_window=body.catchup_window_seconds,
            jitter=body.jitter_seconds,
            time_zone=body.time_zone,
            schedule_id=body.schedule_id,
            paused=body.paused,
            note=body.note,
        )
        return await described(schedule_id)

    @routes.get("/schedules/{schedule_id}")
    async def describe_schedule(schedule_id: str) -> dict[str, Any]:
        """The schedule with its next and recent runs."""
        return await described(schedule_id)

    @routes.post("/schedules/{schedule_id}/pause")
    async def pause_schedule(
        schedule_id: str, body: Annotated[NoteBody | None, Body()] = None
    ) -> dict[str, Any]:
        await orch.pause_schedule(schedule_id, body.note if body else None)
        return await described(schedule_id)

    @routes.post("/schedules/{schedule_id}/resume")
    async def resume_schedule(
        schedule_id: str, body: Annotated[NoteBody | None, Body()] = None
    ) -> dict[str, Any]:
        await orch.resume_schedule(schedule_id, body.note if body else None)
        return await described(schedule_id)

    @routes.post("/schedules/{schedule_id}/trigger")
    async def trigger_schedule(
        schedule_id: str, body: Annotated[TriggerBody | None, Body()] = None
    ) -> dict[str, Any]:
        """Start a run now; it shows in the schedule's recent runs a moment later."""
        await orch.trigger_schedule(schedule_id, body.overlap if body else None)
        return {"triggered": schedule_id}

    @routes.post("/schedules/{schedule_id}/backfill")
    async def backfill_schedule(schedule_id: str, body: BackfillBody) -> dict[str, Any]:
        """Take the runs due between ``start`` and ``end``."""
        await orch.backfill_schedule(schedule_id, body.start, body.end, body.overlap)
        return {"backfilling": schedule_id}

    @routes.delete("/schedules/{schedule_id}")
    async def delete_schedule(schedule_id: str) -> dict[str, Any]:
        await orch.delete_schedule(schedule_id)
        return {"deleted": schedule_id}

    return routes
