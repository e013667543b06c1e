"""Managing webhooks from the studio (under ``/api``, behind the studio's token):

* ``GET /hooks``: the hooks, without secrets;
* ``POST /hooks``: create one; the answer holds its secret, the only time it is shown (201);
* ``DELETE /hooks/{id}``: delete (204);
* ``POST /hooks/{id}/rotate``: a new secret (``{"grace_seconds": n}`` keeps the old one
  valid that long).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Response
from pydantic import Field

from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.studio.api import RequestBody


class CreateHook(RequestBody):
    """``POST /hooks``."""

    hook_id: str = Field(max_length=200)
    workflow_id: str = Field(max_length=200)
    action: Literal["start", "event"] = "start"
    execution_id: str | None = Field(None, max_length=1000)
    event_type: str | None = Field(None, max_length=200)
    source: str | None = Field(None, max_length=200)
    idempotency_field: str | None = Field(None, max_length=100)
    max_body_bytes: int | None = Field(None, ge=1)
    rate_per_minute: int | None = Field(None, ge=1)
    tolerance_seconds: int | None = Field(None, ge=1)


class RotateHook(RequestBody):
    """``POST /hooks/{id}/rotate``."""

    grace_seconds: float = Field(0, ge=0)


def router(orch: AdvancedPluginOrchestrator) -> APIRouter:
    """The routes that manage webhooks."""
    routes = APIRouter()

    @routes.get("/hooks")
    async def list_hooks() -> list[dict[str, Any]]:
        """The webhooks of this namespace and task queue, without their secrets."""
        return [hook.model_dump(mode="json") for hook in await orch.list_hooks()]

    @routes.post("/hooks", status_code=201)
    async def create_hook(body: CreateHook, response: Response) -> dict[str, Any]:
        """Create a webhook; the answer holds its secret, shown only this once."""
        response.headers["cache-control"] = "no-store"
        secret = await orch.create_hook(
            body.hook_id,
            body.workflow_id,
            body.action,
            body.execution_id,
            event_type=body.event_type,
            source=body.source,
            idempotency_field=body.idempotency_field,
            max_body_bytes=body.max_body_bytes,
            rate_per_minute=body.rate_per_minute,
            tolerance_seconds=body.tolerance_seconds,
        )
        return {"hook_id": body.hook_id, "secret": secret, "path": f"/hooks/{body.hook_id}"}

    @routes.delete("/hooks/{hook_id}", status_code=204)
    async def delete_hook(hook_id: str) -> Response:
        """Delete a webhook: its URL answers 404 from then on."""
        await orch.delete_hook(hook_id)
        return Response(status_code=204)

    @routes.post("/hooks/{hook_id}/rotate")
    async def rotate_hook(
        hook_id: str, response: Response, body: Annotated[RotateHook | None, Body()] = None
    ) -> dict[str, Any]:
        """A new secret for the webhook, shown only this once."""
        response.headers["cache-control"] = "no-store"
        grace = body.grace_seconds if body is not None else 0
        secret = await orch.rotate_hook_secret(hook_id, grace)
        return {"hook_id": hook_id, "secret": secret}

    return routes
