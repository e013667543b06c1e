"""Commands about definitions: validate, register, unregister, show, list, graph, plugins."""

from __future__ import annotations

import argparse
import json

from engine.base.errors import PluginError
from engine.cli.common import (
    Code,
    is_file_argument,
    load_definition,
    open_session,
    register_or_update,
)
from engine.cli.errors import UsageError
from engine.hosting.embedded import (
    embedded_worker,
)
from engine.language.graph_view import render
from engine.language.validation import validate_workflow
from engine.runtime.contracts import PluginInfo
from engine.temporal.catalog import describe_plugins, unchecked_nodes, validate_with_catalog
from plugins import PluginRegistry


def cmd_validate(args: argparse.Namespace) -> int:
    """Structure, then (unless ``--structure-only``) every node's plugin and configuration
    against the plugins installed here: the built-ins and installed packages' entry points,
    as ``orchestrator worker`` would load them. No server."""
    workflow = load_definition(args.file)
    summary = (
        f"{workflow.workflow_id} ({len(workflow.nodes)} nodes, "
        f"{len(workflow.connections)} connections, {workflow.execution_mode.name})"
    )
    if args.structure_only:
        validate_workflow(workflow)
        print(f"structure valid: {summary}; plugins and configurations not checked")
        return 0
    catalog = _installed_catalog()
    try:
        validate_with_catalog(workflow, catalog, offered_by=_NOT_INSTALLED)
    except PluginError as exc:
        raise _checked_locally(exc, len(catalog)) from None
    print(
        f"valid: {summary}; structure, plugins and configurations checked against "
        f"{len(catalog)} built-in and installed plugins"
    )
    if unchecked := unchecked_nodes(workflow, catalog):
        print(f"configuration not checked (no schema installed here): {', '.join(unchecked)}")
    return 0


# Completes "node 'x' uses plugin 'y', which ... as a node plugin".
_NOT_INSTALLED = "neither the built-ins nor an installed package offer"


_SKIP_HINT = "`orchestrator validate --structure-only` checks structure only"


def _installed_catalog() -> dict[str, PluginInfo]:
    """The catalog a worker started here would publish."""
    try:
        registry = PluginRegistry.default()
    except PluginError as exc:
        raise PluginError(
            exc.code,
            f"cannot load the installed plugins to check the definition against: "
            f"{exc.message}; {_SKIP_HINT}",
            exc.details,
        ) from None
    return {info.plugin_id: info for info in describe_plugins(registry)}


def _checked_locally(exc: PluginError, plugins: int) -> PluginError:
    """``exc``, saying where plugins were looked up if a problem is the catalog's."""
    problems = exc.details.get("problems", [])
    if not any(isinstance(p, dict) and "plugin_id" in p for p in problems):
        return exc
    note = (
        f" (plugins and configurations were checked against the {plugins} built-in and "
        "installed plugins of this Python environment; workers may offer others: "
        f"{_SKIP_HINT})"
    )
    return PluginError(exc.code, exc.message + note, exc.details)


async def cmd_register(args: argparse.Namespace) -> int:
    workflow = load_definition(args.file)
    validate_workflow(workflow)
    async with open_session(args) as session:
        orch = session.orchestrator
        async with embedded_worker(orch.client, orch.task_queue):
            try:
                await orch.register_workflow(workflow)
            except PluginError as exc:
                if exc.code is not Code.WorkflowAlreadyExists:
                    raise
                if not args.replace:
                    raise PluginError(
                        exc.code,
                        f"{exc.message}; `orchestrator register {args.file} --replace` makes "
                        "this file its next version",
                    ) from None
                print(await register_or_update(orch, workflow))
                return 0
            # Read it back before the worker stops: a worker that stops while holding the
            # registry entity's first task leaves it stalled for the 10 s task timeout.
            stored = await orch.get_workflow(workflow.workflow_id)
            print(f"registered {workflow.workflow_id} (version {stored.version})")
    return 0


async def cmd_unregister(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        orch = session.orchestrator
        async with embedded_worker(orch.client, orch.task_queue):
            await orch.unregister_workflow(args.workflow_id)
    print(f"unregistered {args.workflow_id}")
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        orch = session.orchestrator
        async with embedded_worker(orch.client, orch.task_queue):
            workflow = await orch.get_workflow(args.workflow_id)
    print(json.dumps(workflow.to_json(), indent=2))
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        for workflow_id in await session.orchestrator.get_registered_workflows():
            print(workflow_id)
    return 0


async def cmd_graph(args: argparse.Namespace) -> int:
    if args.execution:
        async with open_session(args) as session:
            orch = session.orchestrator
            workflow = await orch.get_execution_definition(args.execution)
            context = await orch.get_execution_status(args.execution)
        named = args.workflow
        if named is not None and is_file_argument(named):
            named = load_definition(named).workflow_id  # the README's `graph FILE --execution`
        if named not in (workflow.workflow_id, None):
            raise UsageError(
                f"execution '{args.execution}' runs workflow '{workflow.workflow_id}', "
                f"not '{named}'"
            )
        print(render(workflow, args.format, context.node_states), end="")
        return 0
    if args.workflow is None:
        raise UsageError("graph needs a workflow id, a definition file or --execution")
    if is_file_argument(args.workflow):
        workflow = load_definition(args.workflow)
    else:
        async with open_session(args) as session:
            orch = session.orchestrator
            async with embedded_worker(orch.client, orch.task_queue):
                workflow = await orch.get_workflow(args.workflow)
    print(render(workflow, args.format), end="")
    return 0


async def cmd_plugins(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        catalog = await session.orchestrator.get_plugin_catalog()
    if args.json:
        print(json.dumps([info.model_dump(mode="json") for info in catalog], indent=2))
        return 0
    if not catalog:
        print(f"no catalog for task queue '{session.orchestrator.task_queue}' yet: start a worker")
        return 0
    for info in catalog:
        kinds = "+".join(k for k, on in (("node", info.function), ("source", info.source)) if on)
        ports = ""
        if info.input_ports or info.output_ports:
            ports = f"  [{', '.join(info.input_ports)} -> {', '.join(info.output_ports)}]"
        fields = sorted(
            (info.config_schema or info.source_config_schema or {}).get("properties", {})
        )
        config = f"  config: {', '.join(fields)}" if fields else ""
        print(f"{info.plugin_id:<24} {kinds:<12} {info.description}{ports}{config}")
    return 0
