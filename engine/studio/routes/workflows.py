"""Definitions: list, read, register or update, unregister, and validate without saving."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from engine.base.errors import PluginError, PluginErrorCode
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.language.models import PluginWorkflow
from engine.studio.api import error_body
from engine.studio.definitions import (
    annotate_async,
    catalog_of,
    check_definition_off_loop,
    parse_workflow,
)

Code = PluginErrorCode


def router(orch: AdvancedPluginOrchestrator) -> APIRouter:
    """The routes of definitions: ``/workflows``, ``/workflows/{id}`` and ``/validate``."""
    routes = APIRouter()

    @routes.get("/workflows")
    async def list_workflows() -> list[dict[str, Any]]:
        """Registered definitions, by id."""
        ids = await orch.get_registered_workflows()
        limit = asyncio.Semaphore(16)

        async def summary(workflow_id: str) -> dict[str, Any] | None:
            async with limit:
                try:
                    definition = await orch.get_workflow(workflow_id)
                except PluginError as exc:
                    if exc.code is Code.WorkflowNotFound:
                        return None  # unregistered while listing
                    return {"workflow_id": workflow_id, "error": error_body(exc)}
            return {
                "workflow_id": workflow_id,
                "name": definition.name,
                "description": definition.description,
                "execution_mode": definition.execution_mode.value,
                "version": definition.version,
                "nodes": len(definition.nodes),
                "connections": len(definition.connections),
            }

        rows = await asyncio.gather(*(summary(i) for i in ids))
        return [row for row in rows if row is not None]

    @routes.get("/workflows/{workflow_id}")
    async def get_workflow(workflow_id: str) -> dict[str, Any]:
        """The current definition, with its version."""
        return (await orch.get_workflow(workflow_id)).to_json()

    @routes.put("/workflows/{workflow_id}")
    async def put_workflow(
        workflow_id: str,
        definition: Annotated[dict[str, Any], Body()],
        response: Response,
        expected_version: Annotated[int | None, Query(ge=0)] = None,
    ) -> dict[str, Any]:
        """Register a definition (201) or replace the registered one with a new version
        (200). With ``expected_version``, refuse (409) unless the stored version is that one
        (0: not registered), so editors do not overwrite each other's changes."""
        workflow = parse_workflow(definition)
        if workflow.workflow_id != workflow_id:
            raise PluginError(
                Code.InvalidInput,
                f"the definition's workflow_id {workflow.workflow_id!r} is not {workflow_id!r}",
            )
        await check_definition_off_loop(workflow, await catalog_of(orch))
        current: PluginWorkflow | None
        try:
            current = await orch.get_workflow(workflow_id)
        except PluginError as exc:
            if exc.code is not Code.WorkflowNotFound:
                raise
            current = None
        version = current.version if current else 0
        if expected_version is not None and version != expected_version:
            raise PluginError(
                Code.InvalidState,
                f"workflow '{workflow_id}' is already registered (version {version})"
                if expected_version == 0
                else f"workflow '{workflow_id}' is at version {version or '(not registered)'}, "
                f"not {expected_version}: it changed since it was loaded",
            )
        if current is None:
            try:
                await annotate_async(workflow, orch.register_workflow(workflow))
            except PluginError as exc:
                if exc.code is not Code.WorkflowAlreadyExists or expected_version is not None:
                    raise
            else:
                response.status_code = 201
                stored = workflow.model_copy(deep=True, update={"version": 1})
                return {"created": True, "workflow": stored.to_json()}
        stored = await annotate_async(workflow, orch.update_workflow(workflow))
        return {"created": False, "workflow": stored.to_json()}

    @routes.delete("/workflows/{workflow_id}", status_code=204)
    async def delete_workflow(workflow_id: str) -> Response:
        """Unregister a definition; its running executions keep their snapshot."""
        await orch.unregister_workflow(workflow_id)
        return Response(status_code=204)

    @routes.post("/validate")
    async def validate(definition: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        """Validate a definition without saving it: structure, conditions, cycles, modes,
        and every node against the plugin catalog (plugin ids, configurations, expressions
        compiled), every problem at once. Each problem names the nodes (by id) and
        connections (by index) it is about."""
        catalog = await catalog_of(orch)
        try:
            workflow = parse_workflow(definition)
            await check_definition_off_loop(workflow, catalog)
        except PluginError as exc:
            return {"ok": False, "code": exc.code.value, "problems": exc.details["problems"]}
        return {"ok": True, "problems": [], "catalog_checked": bool(catalog)}

    return routes
