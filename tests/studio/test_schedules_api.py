"""The studio's schedule routes against the real dev server: create, list, describe, pause,
resume, trigger, backfill, delete, errors, and the guard on every one of them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from engine import AdvancedPluginOrchestrator
from engine.studio import create_app
from tests.helpers.builders import chain
from tests.helpers.waiting import eventually
from tests.studio.conftest import UI_URL

pytestmark = pytest.mark.integration

TOKEN = "schedules-test-token-0123456789"


async def _details(api: httpx.AsyncClient, schedule_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/schedules/{schedule_id}")
    assert response.status_code == 200, response.text
    details: dict[str, Any] = response.json()
    return details


async def test_schedule_routes(api: httpx.AsyncClient, worker: object, unique) -> None:
    workflow_id = unique("studio_sched")
    created = await api.put(f"/api/workflows/{workflow_id}", json=chain(workflow_id, 1).to_json())
    assert created.status_code == 201, created.text

    response = await api.post(
        f"/api/workflows/{workflow_id}/schedules",
        json={
            "interval_seconds": 3600,
            "input_data": {"k": "v"},
            "overlap": "allow_all",
            "paused": True,
            "note": "created paused",
            "schedule_id": f"{workflow_id}-hourly",
        },
    )
    assert response.status_code == 201, response.text
    details = response.json()
    schedule_id = details["schedule_id"]
    assert schedule_id == f"{workflow_id}-hourly"
    assert details["paused"] is True
    assert details["overlap"] == "allow_all"
    assert details["input_data"] == {"k": "v"}
    assert details["temporal_ui"] == f"{UI_URL}/namespaces/default/schedules/{schedule_id}"

    listed = await eventually(
        lambda: api.get("/api/schedules", params={"workflow_id": workflow_id}),
        lambda r: [row["schedule_id"] for row in r.json()] == [schedule_id],
    )
    assert listed.json()[0]["interval_seconds"] == 3600

    resumed = await api.post(f"/api/schedules/{schedule_id}/resume", json={})
    assert resumed.json()["paused"] is False
    assert resumed.json()["next_action_times"]
    paused = await api.post(f"/api/schedules/{schedule_id}/pause", json={"note": "wait"})
    assert paused.json()["note"] == "wait"

    triggered = await api.post(f"/api/schedules/{schedule_id}/trigger", json={})
    assert triggered.status_code == 200, triggered.text
    backfill = await api.post(
        f"/api/schedules/{schedule_id}/backfill",
        json={"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T01:59:59Z"},
    )
    assert backfill.status_code == 200, backfill.text
    details = await eventually(
        lambda: _details(api, schedule_id), lambda d: len(d["recent_runs"]) == 3
    )
    for run in details["recent_runs"]:
        execution = await eventually(
            lambda run=run: api.get(f"/api/executions/{run['execution_id']}"),
            lambda r: r.json()["context"]["status"] == "completed",
        )
        assert execution.json()["context"]["workflow_id"] == workflow_id

    # Errors: JSON bodies with the engine's codes.
    bad = await api.post(
        f"/api/workflows/{workflow_id}/schedules",
        json={"cron": "* * * * *", "time_zone": "Nowhere"},
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "InvalidInput"
    assert "Nowhere" in bad.json()["message"]
    both = await api.post(
        f"/api/workflows/{workflow_id}/schedules", json={"cron": "@daily", "interval_seconds": 5}
    )
    assert both.status_code == 422
    assert "exactly one of cron and interval" in both.json()["message"]
    unknown_field = await api.post(
        f"/api/workflows/{workflow_id}/schedules", json={"interval_seconds": 5, "every": 1}
    )
    assert unknown_field.status_code == 422
    overlap = await api.post(f"/api/schedules/{schedule_id}/trigger", json={"overlap": "maybe"})
    assert overlap.status_code == 422
    conflict = await api.post(
        f"/api/workflows/{workflow_id}/schedules",
        json={"interval_seconds": 60, "schedule_id": schedule_id},
    )
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "ScheduleAlreadyExists"
    refused = await api.request("DELETE", f"/api/workflows/{workflow_id}", json={})
    assert refused.status_code == 409, refused.text

    deleted = await api.request("DELETE", f"/api/schedules/{schedule_id}", json={})
    assert deleted.status_code == 200, deleted.text
    missing = await api.get(f"/api/schedules/{schedule_id}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "ScheduleNotFound"


async def test_schedule_routes_are_guarded(orchestrator: AdvancedPluginOrchestrator) -> None:
    app = create_app(orchestrator, token=TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as api:
        for method, path in (
            ("GET", "/api/schedules"),
            ("GET", "/api/schedules/some-id"),
            ("POST", "/api/workflows/wf/schedules"),
            ("POST", "/api/schedules/some-id/trigger"),
            ("DELETE", "/api/schedules/some-id"),
        ):
            response = await api.request(method, path, json={})
            assert response.status_code == 401, (method, path)
        headers = {"authorization": f"Bearer {TOKEN}"}
        # A cross-site form cannot steer schedules: changes must be JSON.
        form = await api.post(
            "/api/schedules/some-id/trigger",
            content="x=1",
            headers={**headers, "content-type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 415
        missing = await api.get("/api/schedules/not-one-of-ours", headers=headers)
        assert missing.status_code == 404
        assert missing.json()["code"] == "ScheduleNotFound"
