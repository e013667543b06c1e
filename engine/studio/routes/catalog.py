"""``GET /catalog``: the plugins the task queue's workers offer and the nodes the engine runs
itself, each with the JSON Schema of its configuration."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.language.engine_nodes import ENGINE_NODE_MODELS
from engine.language.models import WorkflowNodeType
from engine.runtime.contracts import PluginInfo

#: The node type the designer suggests for each node the engine runs itself.
ENGINE_NODE_TYPES = {
    "aggregate": WorkflowNodeType.Aggregator,
    "split": WorkflowNodeType.Splitter,
    "wait": WorkflowNodeType.Custom,
    "approval": WorkflowNodeType.Custom,
    "subworkflow": WorkflowNodeType.Custom,
}


def router(orch: AdvancedPluginOrchestrator) -> APIRouter:
    """The catalog's route."""
    routes = APIRouter()

    @routes.get("/catalog")
    async def catalog() -> dict[str, Any]:
        """Plugins the task queue's workers offer, and the nodes the engine runs itself,
        each with the JSON Schema of its configuration."""
        plugins = [plugin_entry(info) for info in await orch.get_plugin_catalog()]
        engine: list[dict[str, Any]] = [
            {
                "plugin_id": plugin_id,
                "description": _first_line(model.__doc__ or ""),
                "function": True,
                "source": False,
                "engine": True,
                "config_schema": model.model_json_schema(),
                "source_config_schema": None,
                "input_ports": [],
                "output_ports": [],
                "node_type": ENGINE_NODE_TYPES.get(plugin_id, WorkflowNodeType.Custom).value,
            }
            for plugin_id, model in ENGINE_NODE_MODELS.items()
        ]
        return {"plugins": plugins + engine, "published": bool(plugins)}

    return routes


def plugin_entry(info: PluginInfo) -> dict[str, Any]:
    """A catalog entry as JSON, with the node type the designer suggests for it."""
    entry = info.model_dump(mode="json")
    entry["engine"] = False
    entry["node_type"] = (
        WorkflowNodeType.Source if info.source and not info.function else WorkflowNodeType.Processor
    ).value
    return entry


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
