"""``orchestrator``: the command line of the engine.

    orchestrator validate examples/quickstart.json
    orchestrator run examples/quickstart.json --follow
    orchestrator status <execution-id>
    orchestrator worker
    orchestrator server start | stop | status

With no ``--address`` (and no ``TEMPORAL_ADDRESS``) the CLI uses the server on 127.0.0.1:7233
or starts the embedded one there, detached (see :mod:`engine.embedded`); commands that need a
worker run one in-process unless a worker already polls the task queue.

Exit codes: 0 success (``run``: the execution completed), 1 a :class:`PluginError` or a
failed/cancelled execution, 2 usage errors (and ``run --detach`` without a worker),
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from temporalio.client import WorkflowExecutionStatus as TemporalStatus

from engine import executions
from engine.catalog import describe_plugins, unchecked_nodes, validate_with_catalog
from engine.connection import default_namespace, default_task_queue
from engine.contracts import PluginInfo
from engine.devserver import port_open
from engine.embedded import (
    ENV_UI_URL,
    default_data_dir,
    embedded_ports,
    embedded_worker,
    ensure_server,
    server_info,
    start_server,
    stop_server,
    temporal_ui_link,
    worker_is_polling,
)
from engine.errors import PluginError, PluginErrorCode
from engine.execution_list import STATUS_FILTERS
from engine.extras import require_extra
from engine.graph_view import FORMATS, render, status_view
from engine.logging import configure_logging
from engine.models import (
    PluginWorkflow,
    WorkflowEvent,
    WorkflowExecutionContext,
    WorkflowExecutionStatus,
)
from engine.orchestrator import AdvancedPluginOrchestrator
from engine.validation import validate_workflow
from engine.worker import run_worker
from plugins import PluginRegistry

Code = PluginErrorCode
ENV_STUDIO_TOKEN = "ORCHESTRATOR_STUDIO_TOKEN"
Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A request the CLI refuses before doing anything (exit code 2)."""


# -- sessions --------------------------------------------------------------------------------


@dataclass
class Session:
    """What a command gets: the orchestrator and the UI base URL (if known)."""

    orchestrator: AdvancedPluginOrchestrator
    ui_url: str | None

    def ui_link(self, execution_id: str) -> str | None:
        if not self.ui_url:
            return None
        namespace = self.orchestrator.client.namespace
        return temporal_ui_link(self.ui_url, namespace, execution_id)


@asynccontextmanager
async def _session(args: argparse.Namespace) -> AsyncIterator[Session]:
    address, ui_url = await ensure_server(args.address, args.data_dir)
    async with await AdvancedPluginOrchestrator.connect(
        address, args.namespace, args.task_queue
    ) as orchestrator:
        yield Session(orchestrator, args.ui_url or ui_url)


def _run_async(command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        return asyncio.run(command(args))

    return handler


# -- definitions -----------------------------------------------------------------------------


def _load_definition(path: str) -> PluginWorkflow:
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise PluginError(Code.InvalidInput, f"cannot read {path}: {exc.strerror}") from None
    # Strict: duplicate keys, NaN, numbers beyond 64 bits and deep nesting are refused.
    return PluginWorkflow.from_json_text(text, source=path)


def _is_file_argument(value: str) -> bool:
    # Workflow ids cannot contain a slash, so a path with one is always meant as a file.
    return "/" in value or os.sep in value or Path(value).is_file()


def _cmd_validate(args: argparse.Namespace) -> int:
    """Structure, then (unless ``--structure-only``) every node's plugin and configuration
    against the plugins installed here: the built-ins and installed packages' entry points,
    as ``orchestrator worker`` would load them. No server."""
    workflow = _load_definition(args.file)
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


async def _register(orch: AdvancedPluginOrchestrator, workflow: PluginWorkflow) -> str:
    """Register ``workflow`` or bring the stored one up to date; say what happened."""
    try:
        stored = await orch.get_workflow(workflow.workflow_id)
    except PluginError as exc:
        if exc.code is not Code.WorkflowNotFound:
            raise
        await orch.register_workflow(workflow)
        return f"registered {workflow.workflow_id} (version 1)"
    if _same_definition(stored, workflow):
        return f"using registered {workflow.workflow_id} (version {stored.version}, unchanged)"
    updated = await orch.update_workflow(workflow)
    return f"updated {workflow.workflow_id} to version {updated.version}"


def _same_definition(a: PluginWorkflow, b: PluginWorkflow) -> bool:
    return a.model_copy(update={"version": 0}) == b.model_copy(update={"version": 0})


async def _cmd_register(args: argparse.Namespace) -> int:
    workflow = _load_definition(args.file)
    validate_workflow(workflow)
    async with _session(args) as session:
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
                print(await _register(orch, workflow))
                return 0
            # Read it back before the worker stops: a worker that stops while holding the
            # registry entity's first task leaves it stalled for the 10 s task timeout.
            stored = await orch.get_workflow(workflow.workflow_id)
            print(f"registered {workflow.workflow_id} (version {stored.version})")
    return 0


async def _cmd_unregister(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        orch = session.orchestrator
        async with embedded_worker(orch.client, orch.task_queue):
            await orch.unregister_workflow(args.workflow_id)
    print(f"unregistered {args.workflow_id}")
    return 0


async def _cmd_show(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        orch = session.orchestrator
        async with embedded_worker(orch.client, orch.task_queue):
            workflow = await orch.get_workflow(args.workflow_id)
    print(json.dumps(workflow.to_json(), indent=2))
    return 0


async def _cmd_list(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        for workflow_id in await session.orchestrator.get_registered_workflows():
            print(workflow_id)
    return 0


async def _cmd_executions(args: argparse.Namespace) -> int:
    if args.limit < 1 or args.page < 1:
        raise UsageError("--limit and --page count from 1")
    if args.active and args.status:
        raise UsageError("--active and --status do not go together")
    async with _session(args) as session:
        orch = session.orchestrator
        if args.active:
            active = await orch.get_active_executions()
            offset = (args.page - 1) * args.limit
            rows = [
                row
                for row in await orch.list_executions(args.workflow, None, offset + len(active))
                if row.active
            ][offset : offset + args.limit]
        else:
            rows = await orch.list_executions(
                args.workflow, args.status, args.limit, (args.page - 1) * args.limit
            )
    if args.json:
        print(json.dumps([row.model_dump() for row in rows], indent=2))
        return 0
    if not rows:
        filters = [f"workflow {args.workflow}"] if args.workflow else []
        filters += [f"status {args.status}"] if args.status else []
        filters += ["active"] if args.active else []
        where = f" ({', '.join(filters)})" if filters else ""
        page = f" on page {args.page}" if args.page > 1 else ""
        print(f"no executions{where}{page} on task queue '{orch.task_queue}'")
        return 0
    width = max(len(row.execution_id) for row in rows)
    print(f"{'execution':<{width}}  {'status':<10}  {'progress':>8}  started")
    for row in rows:
        progress = f"{row.progress:.0%}" if row.progress is not None else "-"
        started = (row.start_time or "-")[:19].replace("T", " ")
        print(f"{row.execution_id:<{width}}  {row.status:<10}  {progress:>8}  {started}")
    if len(rows) == args.limit:
        print(f"(more may follow: --page {args.page + 1})")
    return 0


# -- running ---------------------------------------------------------------------------------


def _input_data(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.input is not None:
        source, text = "--input", args.input
    elif args.input_file is not None:
        source = args.input_file
        try:
            text = Path(args.input_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise PluginError(
                Code.InvalidInput, f"cannot read {args.input_file}: {exc.strerror}"
            ) from None
    else:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PluginError(Code.InvalidInput, f"{source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PluginError(
            Code.InvalidInput, f"{source} must be a JSON object, got {type(data).__name__}"
        )
    return data


async def _cmd_run(args: argparse.Namespace) -> int:
    input_data = _input_data(args)
    workflow: PluginWorkflow | None = None
    if _is_file_argument(args.workflow):
        workflow = _load_definition(args.workflow)
        validate_workflow(workflow)
    workflow_id = workflow.workflow_id if workflow else args.workflow

    async with _session(args) as session:
        orch = session.orchestrator
        if args.detach and not await worker_is_polling(orch.client, orch.task_queue):
            raise UsageError(
                f"--detach needs a worker polling task queue '{orch.task_queue}' (the run "
                "would have no worker once this command exits); start one with "
                "`orchestrator worker`, or run without --detach"
            )
        async with embedded_worker(orch.client, orch.task_queue):
            if workflow is not None:
                print(await _register(orch, workflow), file=sys.stderr)
            try:
                execution_id = await orch.execute_workflow(workflow_id, input_data)
            except PluginError as exc:
                if exc.code is Code.WorkflowNotFound and workflow is None:
                    raise _not_a_file_either(workflow_id, orch.task_queue, exc) from None
                raise
            print(f"execution: {execution_id}")
            if link := session.ui_link(execution_id):
                print(f"temporal ui: {link}")
            sys.stdout.flush()
            if args.detach:
                return 0
            try:
                context = await _await_end(
                    orch, execution_id, args.follow, args.timeout, session.ui_link(execution_id)
                )
            except asyncio.CancelledError:  # Ctrl-C: the run itself is durable
                print(
                    f"execution '{execution_id}' goes on whenever a worker polls task queue "
                    f"'{orch.task_queue}' (`orchestrator worker`)",
                    file=sys.stderr,
                )
                raise
    _print_outcome(context)
    return 0 if context.status is WorkflowExecutionStatus.Completed else 1


def _not_a_file_either(name: str, task_queue: str, exc: PluginError) -> PluginError:
    """`run NAME` where NAME is neither a file nor a registered workflow: a name ending in
    .json was meant as a file, so say that first."""
    if not name.lower().endswith(".json"):
        return exc
    return PluginError(
        Code.InvalidInput,
        f"no such file: {name} (nor is a workflow '{name}' registered on task queue "
        f"'{task_queue}')",
    )


async def _await_end(
    orch: AdvancedPluginOrchestrator,
    execution_id: str,
    follow: bool,
    timeout: float | None,
    ui_link: str | None,
) -> WorkflowExecutionContext:
    """Wait for the end; with ``follow``, draw the graph live on a terminal and print event
    lines elsewhere (logs and pipes keep a readable record)."""
    try:
        async with asyncio.timeout(timeout):
            if follow:
                console = _console()
                if console.is_terminal:
                    await _watch(orch, execution_id, console, ui_link)
                else:
                    await _print_events(orch.events(execution_id))
            return await orch.wait_for_completion(execution_id)
    except TimeoutError:
        raise PluginError(
            Code.Timeout,
            f"execution '{execution_id}' did not finish within {timeout:g}s; it goes on "
            f"whenever a worker polls task queue '{orch.task_queue}' "
            f"(`orchestrator status {execution_id}`)",
        ) from None


async def _print_events(stream: AsyncIterator[WorkflowEvent]) -> None:
    try:
        async for event in stream:
            _print_event(event)
    finally:
        # Close the generator here (on timeout too), not in asyncio.run's final sweep.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _print_event(event: WorkflowEvent) -> None:
    parts = [f"{event.sequence:>4}", f"{event.type.value:<26}", f"{event.node_id or '-':<20}"]
    parts.append(f"{event.progress:>5.0%}" if event.progress is not None else " " * 5)
    if event.error:
        parts.append(event.error)
    print("  ".join(parts).rstrip(), flush=True)


def _print_outcome(context: WorkflowExecutionContext) -> None:
    print(f"status: {context.status.value}")
    for message in context.error_messages:
        print(f"error: {message}")
    results = context.execution_data.get("results")
    print("results: " + json.dumps(results if results is not None else {}, indent=2))


# -- monitoring and control ------------------------------------------------------------------


# How long pause and resume wait for the execution's worker to take the request.
_UPDATE_TIMEOUT = 30.0


async def _require_worker(orch: AdvancedPluginOrchestrator, execution_id: str) -> None:
    """Fail fast when a running execution has no worker to take a control request (an
    update would wait forever). Reads need none: they fall back to the run's history."""
    handle = orch.client.get_workflow_handle(execution_id)
    description = await executions.describe(handle, execution_id)
    if description.status is not TemporalStatus.RUNNING:
        return
    queue = description.task_queue
    if not await worker_is_polling(orch.client, queue, include_embedded=True):
        raise PluginError(
            Code.WorkerUnavailable,
            f"execution '{execution_id}' is running but no worker polls its task queue "
            f"'{queue}'; start one with `orchestrator worker --task-queue {queue}`",
        )


async def _cmd_status(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        orch = session.orchestrator
        if args.json:
            context = await orch.get_execution_status(args.execution_id)
            print(json.dumps(context.to_json(), indent=2))
            return 0
        console = _console()
        link = session.ui_link(args.execution_id)
        if args.watch:
            await _watch(orch, args.execution_id, console, link)
        else:
            workflow = await orch.get_execution_definition(args.execution_id)
            context = await orch.get_execution_status(args.execution_id)
            _print_view(console, status_view(workflow, context, ui_link=link, now=_now()))
    return 0


# How often a live view redraws when no event arrives (running nodes' times go on).
_WATCH_REFRESH = 1.0


async def _watch(
    orch: AdvancedPluginOrchestrator, execution_id: str, console: Console, ui_link: str | None
) -> WorkflowExecutionContext:
    """Redraw the execution's graph whenever it records an event (and every second for
    the clocks) until it ends; return its final context."""
    workflow = await orch.get_execution_definition(execution_id)
    changed = asyncio.Event()

    async def listen() -> None:
        stream = orch.events(execution_id)
        try:
            async for _ in stream:
                changed.set()
        finally:
            await stream.aclose()
        changed.set()

    listener = asyncio.create_task(listen())
    try:
        context = await orch.get_execution_status(execution_id)
        view = status_view(workflow, context, ui_link=ui_link, now=_now())
        with Live(view, console=console, auto_refresh=False, transient=False) as live:
            while not context.status.is_terminal:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_WATCH_REFRESH):
                        await changed.wait()
                changed.clear()
                if listener.done() and listener.exception() is not None:
                    raise listener.exception()  # type: ignore[misc]
                context = await orch.get_execution_status(execution_id)
                live.update(status_view(workflow, context, ui_link=ui_link, now=_now()))
                live.refresh()
        return context
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


def _console() -> Console:
    # Pipes and files get plain text, wide enough that rows do not fold.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _print_view(console: Console, view: RenderableType) -> None:
    if console.is_terminal:
        console.print(view)
        return
    with console.capture() as capture:
        console.print(view)
    print("\n".join(line.rstrip() for line in capture.get().splitlines()))


def _now() -> datetime:
    return datetime.now(UTC)


async def _cmd_graph(args: argparse.Namespace) -> int:
    if args.execution:
        async with _session(args) as session:
            orch = session.orchestrator
            workflow = await orch.get_execution_definition(args.execution)
            context = await orch.get_execution_status(args.execution)
        named = args.workflow
        if named is not None and _is_file_argument(named):
            named = _load_definition(named).workflow_id  # the README's `graph FILE --execution`
        if named not in (workflow.workflow_id, None):
            raise UsageError(
                f"execution '{args.execution}' runs workflow '{workflow.workflow_id}', "
                f"not '{named}'"
            )
        print(render(workflow, args.format, context.node_states), end="")
        return 0
    if args.workflow is None:
        raise UsageError("graph needs a workflow id, a definition file or --execution")
    if _is_file_argument(args.workflow):
        workflow = _load_definition(args.workflow)
    else:
        async with _session(args) as session:
            orch = session.orchestrator
            async with embedded_worker(orch.client, orch.task_queue):
                workflow = await orch.get_workflow(args.workflow)
    print(render(workflow, args.format), end="")
    return 0


async def _cmd_pause(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        orch = session.orchestrator
        await _require_worker(orch, args.execution_id)
        await _with_update_timeout(orch.pause_execution(args.execution_id), args.execution_id)
    print(f"paused {args.execution_id}")
    return 0


async def _cmd_resume(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        orch = session.orchestrator
        await _require_worker(orch, args.execution_id)
        await _with_update_timeout(orch.resume_execution(args.execution_id), args.execution_id)
    print(f"resumed {args.execution_id}")
    return 0


async def _with_update_timeout(request: Coroutine[Any, Any, None], execution_id: str) -> None:
    try:
        async with asyncio.timeout(_UPDATE_TIMEOUT):
            await request
    except TimeoutError:
        raise PluginError(
            Code.WorkerUnavailable,
            f"execution '{execution_id}': no worker took the request within "
            f"{_UPDATE_TIMEOUT:g}s; is a worker running on its task queue?",
        ) from None


async def _cmd_cancel(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        await session.orchestrator.cancel_execution(args.execution_id)
    print(f"cancellation requested for {args.execution_id}")
    return 0


async def _cmd_blobs_gc(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        removed = await session.orchestrator.collect_blobs(older_than=args.older_than_days * 86400)
    for execution_id in removed:
        print(f"removed the blobs of {execution_id}")
    print(f"{len(removed)} executions' blobs removed from {session.orchestrator.blobs.location}")
    return 0


async def _cmd_retry(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        execution_id = await session.orchestrator.retry_execution(args.execution_id)
    print(f"retrying {execution_id} from where it stopped")
    return 0


async def _cmd_skip(args: argparse.Namespace) -> int:
    try:
        output = json.loads(args.output)
    except json.JSONDecodeError as exc:
        raise PluginError(Code.InvalidInput, f"--output is not valid JSON: {exc}") from None
    async with _session(args) as session:
        await session.orchestrator.skip_node(args.execution_id, args.node_id, output)
    print(f"node {args.node_id} of {args.execution_id} completes with the given output")
    return 0


async def _cmd_approve(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.data)
    except json.JSONDecodeError as exc:
        raise PluginError(Code.InvalidInput, f"--data is not valid JSON: {exc}") from None
    async with _session(args) as session:
        await _require_worker(session.orchestrator, args.execution_id)
        await session.orchestrator.approve_node(
            args.execution_id,
            args.node_id,
            not args.reject,
            by=args.by,
            comment=args.comment,
            data=data,
        )
    print(f"{'rejected' if args.reject else 'approved'} {args.node_id} of {args.execution_id}")
    return 0


async def _cmd_plugins(args: argparse.Namespace) -> int:
    async with _session(args) as session:
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


async def _cmd_send_event(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise PluginError(Code.InvalidInput, f"--payload is not valid JSON: {exc}") from None
    async with _session(args) as session:
        event_id = await session.orchestrator.send_event(
            args.execution_id,
            args.event_type,
            payload,
            event_id=args.event_id,
            source=args.source,
        )
    print(f"sent event {event_id} to {args.execution_id}")
    return 0


async def _cmd_events(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        await _print_events(session.orchestrator.events(args.execution_id, after=args.after))
    return 0


# -- worker and server -----------------------------------------------------------------------


async def _cmd_worker(args: argparse.Namespace) -> int:
    address, _ = await ensure_server(args.address, args.data_dir)
    await run_worker(
        target=address,
        namespace=args.namespace,
        task_queue=args.task_queue,
        max_concurrent_activities=args.max_concurrent_activities,
        graceful_shutdown=args.graceful_shutdown,
        metrics_bind=args.metrics_bind,
    )
    return 0


async def _cmd_studio(args: argparse.Namespace) -> int:
    # FastAPI and uvicorn (the studio extra) load only for this command.
    StudioServer = require_extra("engine.studio", "studio", "orchestrator studio").StudioServer

    token = _studio_token(args)  # checked before anything starts
    embedded = not (args.address or os.environ.get("TEMPORAL_ADDRESS"))
    async with _session(args) as session:
        orch = session.orchestrator
        server = StudioServer(orch, args.host, args.port, ui_url=session.ui_url, token=token)
        # Against the embedded server the studio runs nodes itself while no worker polls (one
        # command to design and run); against a cluster that is the workers' job.
        runs_nodes = embedded and not args.no_worker
        async with (
            embedded_worker(orch.client, orch.task_queue)
            if runs_nodes
            else contextlib.nullcontext()
        ):
            await server.start()
            print(f"studio: {server.url}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            # As PID 1 in a container SIGTERM would otherwise be ignored.
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            try:
                stopped = asyncio.create_task(server.wait())
                waiting = asyncio.create_task(stop.wait())
                await asyncio.wait({stopped, waiting}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
                await server.stop()
    return 0


def _studio_token(args: argparse.Namespace) -> str | None:
    """The studio's token: from ``--token-file``, else ``--token`` (with a warning: the
    command line is visible to every user of the machine), else ``ORCHESTRATOR_STUDIO_TOKEN``;
    None when none is set (an empty variable is none).

    Raises:
        UsageError: Both ``--token`` and ``--token-file``.
        PluginError: ``InvalidConfiguration``: an unreadable or empty token file, or a token
            that is too short or holds spaces (``engine.studio.guard.check_token``).
    """
    from engine.studio.guard import check_token

    if args.token is not None and args.token_file is not None:
        raise UsageError("give --token-file or --token, not both")
    if args.token_file is not None:
        token: str | None = _read_token_file(args.token_file)
    elif args.token is not None:
        print(
            "warning: --token puts the studio's token on the command line, where every user "
            "of this machine can read it (ps, /proc/PID/cmdline) and shell history keeps it; "
            f"set {ENV_STUDIO_TOKEN} or use --token-file instead",
            file=sys.stderr,
            flush=True,
        )
        token = args.token
    else:
        token = os.environ.get(ENV_STUDIO_TOKEN) or None
    if token is not None:
        check_token(token)
    return token


def _read_token_file(path: Path) -> str:
    """The token in ``path``: its text without surrounding whitespace (a final newline)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PluginError(
            Code.InvalidConfiguration, f"cannot read the token file {path}: {reason}"
        ) from None
    if not token:
        raise PluginError(Code.InvalidConfiguration, f"the token file {path} is empty")
    return token


def _cmd_server_start(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    running = server_info(data_dir)
    if running is None:
        if port_open("127.0.0.1", args.port):
            raise PluginError(
                Code.ServerUnavailable,
                f"port {args.port} is in use (another Temporal server?); pick another with "
                "--port, or use that server with --address",
            )
        running = start_server(data_dir, args.port, args.ui_port)
        print(f"started the embedded Temporal server (pid {running.pid})")
    else:
        print(f"the embedded Temporal server is already running (pid {running.pid})")
    _print_server(running.address, running.ui_url, running.db_file)
    print(f"stop it with: orchestrator server stop --data-dir {data_dir}")
    return 0


def _cmd_server_stop(args: argparse.Namespace) -> int:
    if stop_server(args.data_dir):
        print(f"stopped the embedded Temporal server of {args.data_dir}")
    else:
        print(f"no embedded Temporal server was running from {args.data_dir}")
    return 0


def _cmd_server_status(args: argparse.Namespace) -> int:
    running = server_info(args.data_dir)
    if running is None:
        print(f"not running (data directory {args.data_dir})")
        return 1
    print(f"running (pid {running.pid})")
    _print_server(running.address, running.ui_url, running.db_file)
    return 0


def _print_server(address: str, ui_url: str | None, db_file: str) -> None:
    print(f"address: {address}")
    print(f"web ui:  {ui_url or '(disabled)'}")
    print(f"data:    {db_file}")


# -- parser ----------------------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: options may come before or after the subcommand; _fill_defaults adds the rest.
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--address",
        default=argparse.SUPPRESS,
        help="Temporal host:port (default TEMPORAL_ADDRESS, else 127.0.0.1:7233, started "
        "embedded if nothing listens there)",
    )
    group.add_argument(
        "--namespace",
        default=argparse.SUPPRESS,
        help="Temporal namespace (default TEMPORAL_NAMESPACE or 'default')",
    )
    group.add_argument(
        "--task-queue",
        default=argparse.SUPPRESS,
        help="task queue of executions and workers (default TEMPORAL_TASK_QUEUE or "
        "'plugin-orchestrator')",
    )
    group.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="data directory of the embedded server (default ORCHESTRATOR_DATA_DIR or "
        "~/.local/share/plugin-orchestrator)",
    )
    group.add_argument(
        "--ui-url",
        default=argparse.SUPPRESS,
        help="Temporal web UI base URL for links (default TEMPORAL_UI_URL; known for the "
        "embedded server)",
    )


def _fill_defaults(args: argparse.Namespace) -> None:
    defaults: dict[str, Callable[[], Any]] = {
        "address": lambda: None,
        "namespace": default_namespace,
        "task_queue": default_task_queue,
        "data_dir": default_data_dir,
        "ui_url": lambda: os.environ.get(ENV_UI_URL) or None,
    }
    for name, default in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, default())


def build_parser() -> argparse.ArgumentParser:
    """The ``orchestrator`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Durable graph workflows on Temporal (AdvancedPluginOrchestrator v2).",
    )
    _global_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub)
        sub.set_defaults(handler=handler)
        return sub

    sub = command(
        "validate",
        _cmd_validate,
        "check a definition file: its structure, and its plugins and configurations against "
        "the plugins installed here (no server needed)",
    )
    sub.add_argument("file", help="JSON definition file")
    sub.add_argument(
        "--structure-only",
        action="store_true",
        help="check the structure only, not plugin ids and configurations",
    )

    sub = command("register", _run_async(_cmd_register), "register a definition file")
    sub.add_argument("file", help="JSON definition file")
    sub.add_argument(
        "--replace", action="store_true", help="update the definition if already registered"
    )

    sub = command("unregister", _run_async(_cmd_unregister), "remove a registered definition")
    sub.add_argument("workflow_id")

    sub = command("show", _run_async(_cmd_show), "print a registered definition as JSON")
    sub.add_argument("workflow_id")

    command("list", _run_async(_cmd_list), "list registered workflow ids")
    sub = command(
        "executions",
        _run_async(_cmd_executions),
        "list executions, active and ended, newest first",
    )
    sub.add_argument("--workflow", metavar="ID", help="only executions of this definition")
    sub.add_argument("--status", choices=STATUS_FILTERS, help="only executions in this status")
    sub.add_argument("--active", action="store_true", help="only running and paused ones")
    sub.add_argument("--limit", type=int, default=20, help="rows per page (20)")
    sub.add_argument("--page", type=int, default=1, help="page number, from 1")
    sub.add_argument("--json", action="store_true", help="print JSON rows")

    sub = command(
        "run",
        _run_async(_cmd_run),
        "run a registered workflow, or a definition file (registered or updated first)",
    )
    sub.add_argument("workflow", metavar="ID_OR_FILE")
    source = sub.add_mutually_exclusive_group()
    source.add_argument("--input", help="input data as a JSON object")
    source.add_argument("--input-file", help="file holding the input data (a JSON object)")
    sub.add_argument(
        "--follow",
        action="store_true",
        help="draw the graph live (on a terminal; elsewhere print events as they happen)",
    )
    sub.add_argument(
        "--detach",
        action="store_true",
        help="print the execution id and return (needs a running worker)",
    )
    sub.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for the end (default: no limit)",
    )

    sub = command("status", _run_async(_cmd_status), "show an execution's graph and state")
    sub.add_argument("execution_id")
    view = sub.add_mutually_exclusive_group()
    view.add_argument("--json", action="store_true", help="print the context as JSON")
    view.add_argument("--watch", action="store_true", help="redraw live until the execution ends")

    sub = command(
        "graph",
        _run_async(_cmd_graph),
        "print a definition's graph as Mermaid or Graphviz DOT (nodes coloured by status "
        "with --execution)",
    )
    sub.add_argument("workflow", metavar="ID_OR_FILE", nargs="?", default=None)
    sub.add_argument("--format", choices=FORMATS, default="mermaid")
    sub.add_argument("--execution", help="colour the nodes by this execution's node states")

    for name, handler, help_text in (
        ("pause", _cmd_pause, "pause an execution (running nodes finish)"),
        ("resume", _cmd_resume, "resume a paused execution"),
        ("cancel", _cmd_cancel, "cancel an execution"),
    ):
        sub = command(name, _run_async(handler), help_text)
        sub.add_argument("execution_id")

    sub = command(
        "blobs-gc",
        _run_async(_cmd_blobs_gc),
        "remove the large-output blobs of executions that have ended",
    )
    sub.add_argument(
        "--older-than-days", type=float, default=7.0, help="keep blobs newer than this"
    )

    sub = command(
        "retry", _run_async(_cmd_retry), "run a failed execution again from its failed node"
    )
    sub.add_argument("execution_id")

    sub = command("skip", _run_async(_cmd_skip), "complete a node with a given output")
    sub.add_argument("execution_id")
    sub.add_argument("node_id")
    sub.add_argument("--output", default="{}", help="the node's output, a JSON object")

    sub = command("approve", _run_async(_cmd_approve), "decide for a node waiting in approval")
    sub.add_argument("execution_id")
    sub.add_argument("node_id", help="the node (node#pass in an EventDriven execution)")
    sub.add_argument("--reject", action="store_true", help="reject instead of approving")
    sub.add_argument("--by", default=os.environ.get("USER", ""), help="who decides")
    sub.add_argument("--comment", default="")
    sub.add_argument("--data", default="{}", help="a JSON object handed to the next nodes")

    sub = command("plugins", _run_async(_cmd_plugins), "list the plugins workers offer")
    sub.add_argument("--json", action="store_true", help="print the catalog as JSON")

    sub = command(
        "send-event", _run_async(_cmd_send_event), "send an event to an EventDriven execution"
    )
    sub.add_argument("execution_id")
    sub.add_argument("event_type")
    sub.add_argument("--payload", default="{}", help="the event as a JSON object")
    sub.add_argument("--event-id", default=None, help="deduplication id (default: a new one)")
    sub.add_argument("--source", default=None, help="the Source node it comes from")

    sub = command("events", _run_async(_cmd_events), "print an execution's events until it ends")
    sub.add_argument("execution_id")
    sub.add_argument("--after", type=int, default=0, help="start after this sequence number")

    sub = command("worker", _run_async(_cmd_worker), "run a worker until SIGTERM or SIGINT")
    sub.add_argument("--max-concurrent-activities", type=int, default=100)
    sub.add_argument(
        "--graceful-shutdown",
        type=float,
        default=30.0,
        help="seconds running nodes get to finish on shutdown",
    )
    sub.add_argument(
        "--metrics-bind",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics "
        "(default: ORCHESTRATOR_METRICS_BIND, else none)",
    )

    sub = command(
        "studio",
        _run_async(_cmd_studio),
        "serve the studio: design definitions and watch executions live in a browser",
    )
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    sub.add_argument("--port", type=int, default=8080, help="port (8080; 0: a free one)")
    sub.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"read the bearer token clients must send from PATH (default: {ENV_STUDIO_TOKEN});"
        " at least 16 characters; required to bind beyond localhost",
    )
    sub.add_argument(
        "--token",
        default=None,
        help=f"the token itself: discouraged, any user can read it in ps; prefer "
        f"{ENV_STUDIO_TOKEN} or --token-file",
    )
    sub.add_argument(
        "--no-worker",
        action="store_true",
        help="on the embedded server, do not run nodes in this process when no worker polls",
    )

    server = command("server", _usage, "manage the embedded Temporal server")
    server.set_defaults(usage=server.format_help())
    server_commands = server.add_subparsers(dest="server_command", metavar="ACTION")
    port, ui_port = embedded_ports()
    for name, action, help_text in (
        ("start", _cmd_server_start, "start it in the background"),
        ("stop", _cmd_server_stop, "stop it"),
        ("status", _cmd_server_status, "show whether it runs"),
    ):
        sub = server_commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub)
        sub.set_defaults(handler=action)
        if name == "start":
            sub.add_argument("--port", type=int, default=port, help=f"gRPC port ({port})")
            sub.add_argument(
                "--ui-port", type=int, default=ui_port, help=f"web UI port ({ui_port}; 0: none)"
            )
    return parser


def _usage(args: argparse.Namespace) -> int:
    print(args.usage, file=sys.stderr, end="")
    return 2


def _quiet_logging() -> None:
    """Logging of commands other than ``worker``: warnings only, unless
    ``ORCHESTRATOR_LOG_LEVEL`` says otherwise."""
    level = os.environ.get("ORCHESTRATOR_LOG_LEVEL")
    # Plugins log through structlog, which would print to stdout unconfigured.
    configure_logging(level or "WARNING")
    if not level:
        # The SDK logs each failed node attempt with a traceback; the run's outcome already
        # names the node and the error.
        logging.getLogger("temporalio.activity").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code.

    Args:
        argv: Arguments without the program name (default ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    _fill_defaults(args)
    if args.command != "worker":
        _quiet_logging()
    handler: Handler = args.handler
    try:
        return handler(args)
    except PluginError as exc:
        print(f"error: {exc.code.value}: {exc.message}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): no traceback, and no flush error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
