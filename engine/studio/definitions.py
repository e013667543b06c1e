"""Checking a definition for the designer: parsed from JSON, validated against the task queue's
plugin catalog, every problem naming the nodes (by id) and connections (by index) it is about,
so the designer can mark them."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable
from typing import Any, TypeVar

from engine.base.errors import PluginError, PluginErrorCode
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.language.models import PluginWorkflow
from engine.runtime.contracts import PluginInfo
from engine.studio.api import INVALID
from engine.temporal.catalog import validate_with_catalog

Code = PluginErrorCode
T = TypeVar("T")


def parse_workflow(data: dict[str, Any]) -> PluginWorkflow:
    """A definition from JSON; a bad one raises ``InvalidWorkflowStructure`` whose details
    carry ``problems`` (one per bad field)."""
    try:
        return PluginWorkflow.from_json(data)
    except PluginError as exc:
        errors = exc.details.get("errors", [])
        problems = [
            problem_from_field(data, ".".join(e["loc"]) or "(root)", e["msg"]) for e in errors
        ] or [{"code": exc.code.value, "message": exc.message, "nodes": [], "connections": []}]
        raise PluginError(exc.code, exc.message, {**exc.details, "problems": problems}) from None


def problem_from_field(data: dict[str, Any], location: str, message: str) -> dict[str, Any]:
    """A problem for one invalid field (``nodes.2.node_type``), naming its node or
    connection."""
    nodes: list[str] = []
    connections: list[int] = []
    parts = location.split(".")
    if len(parts) >= 2 and parts[1].isdigit():
        index = int(parts[1])
        if parts[0] == "nodes":
            raw = data.get("nodes")
            if isinstance(raw, list) and index < len(raw) and isinstance(raw[index], dict):
                nodes.append(str(raw[index].get("node_id", "")))
        elif parts[0] == "connections":
            connections.append(index)
    return {
        "code": Code.InvalidWorkflowStructure.value,
        "message": f"{location}: {message}",
        "nodes": nodes,
        "connections": connections,
    }


def problem(workflow: PluginWorkflow, code: str, message: str) -> dict[str, Any]:
    """A validation problem with the nodes (ids) and connections (indices) it names."""
    nodes = [
        node.node_id
        for node in workflow.nodes
        if node.node_id
        and (f"node '{node.node_id}'" in message or f"node_id '{node.node_id}'" in message)
    ]
    nodes += [
        f"#{index}"
        for index, node in enumerate(workflow.nodes)
        if not node.node_id and f"node #{index}" in message
    ]
    connections = [
        index
        for index, conn in enumerate(workflow.connections)
        if ((conn.source_node or conn.connection_id) and conn.label() in message)
        or f"connection #{index}" in message
    ]
    if cycle := re.search(r"circular dependency: (.+)$", message):
        path = [part.strip() for part in cycle.group(1).split(" -> ")]
        nodes += [node_id for node_id in dict.fromkeys(path) if node_id not in nodes]
        pairs = set(itertools.pairwise(path))
        connections += [
            index
            for index, conn in enumerate(workflow.connections)
            if (conn.source_node, conn.target_node) in pairs and index not in connections
        ]
    return {"code": code, "message": message, "nodes": nodes, "connections": connections}


async def catalog_of(orch: AdvancedPluginOrchestrator) -> dict[str, PluginInfo]:
    """The task queue's plugin catalog by id (empty before any worker published one)."""
    return {info.plugin_id: info for info in await orch.get_plugin_catalog()}


async def check_definition_off_loop(
    workflow: PluginWorkflow, catalog: dict[str, PluginInfo]
) -> None:
    """:func:`check_definition` in a thread: compiling every condition and expression of a
    large definition takes seconds of CPU, during which other requests are served."""
    await asyncio.to_thread(check_definition, workflow, catalog)


def check_definition(workflow: PluginWorkflow, catalog: dict[str, PluginInfo]) -> None:
    """:func:`validate_with_catalog` (structure, and every node against the catalog), with
    nodes and connections named in its problems."""
    try:
        validate_with_catalog(workflow, catalog)
    except PluginError as exc:
        raise _annotated(workflow, exc) from None


async def annotate_async(workflow: PluginWorkflow, step: Awaitable[T]) -> T:
    """Await a registration step; name nodes and connections in its problems."""
    try:
        return await step
    except PluginError as exc:
        raise _annotated(workflow, exc) from None


def _annotated(workflow: PluginWorkflow, exc: PluginError) -> PluginError:
    raw = exc.details.get("problems")
    if isinstance(raw, list):
        problems = [
            problem(workflow, str(p.get("code", exc.code.value)), str(p.get("message", "")))
            for p in raw
            if isinstance(p, dict)
        ]
    elif exc.code in INVALID or "node_id" in exc.details:
        problems = [problem(workflow, exc.code.value, exc.message)]
        node_id = exc.details.get("node_id")
        if node_id and node_id not in problems[0]["nodes"]:
            problems[0]["nodes"].append(node_id)
    else:
        return exc
    return PluginError(exc.code, exc.message, {**exc.details, "problems": problems})
