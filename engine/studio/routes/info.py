"""``GET /info``: what the front end needs to know about this server."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.language.models import (
    ConnectionType,
    WorkflowExecutionMode,
    WorkflowExecutionStatus,
    WorkflowNodeType,
)


def router(orch: AdvancedPluginOrchestrator, *, ui_url: str | None, auth: bool) -> APIRouter:
    """The server's route; ``auth`` tells the front end whether requests need a token."""
    routes = APIRouter()

    @routes.get("/info")
    async def info() -> dict[str, Any]:
        """What the front end needs to know about this server."""
        return {
            "task_queue": orch.task_queue,
            "namespace": orch.client.namespace,
            "temporal_ui": ui_url,
            "auth": auth,
            "execution_modes": [m.value for m in WorkflowExecutionMode],
            "node_types": [t.value for t in WorkflowNodeType],
            "connection_types": [t.value for t in ConnectionType],
            "statuses": [s.value for s in WorkflowExecutionStatus],
        }

    return routes
