"""Commands about executions: run, executions, status, events, pause, resume, cancel, retry,
skip, approve, send-event."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from engine.base.errors import PluginError
from engine.cli.common import (
    Code,
    is_file_argument,
    load_definition,
    make_console,
    open_session,
    print_events,
    print_outcome,
    print_view,
    register_or_update,
    require_worker,
    utc_now,
    with_update_timeout,
)
from engine.cli.errors import UsageError
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.hosting.embedded import (
    embedded_worker,
    worker_is_polling,
)
from engine.language.graph_view import status_view
from engine.language.models import (
    PluginWorkflow,
    WorkflowExecutionContext,
    WorkflowExecutionStatus,
)
from engine.language.validation import validate_workflow


async def cmd_executions(args: argparse.Namespace) -> int:
    if args.limit < 1 or args.page < 1:
        raise UsageError("--limit and --page count from 1")
    if args.active and args.status:
        raise UsageError("--active and --status do not go together")
    async with open_session(args) as session:
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


async def cmd_run(args: argparse.Namespace) -> int:
    input_data = _input_data(args)
    workflow: PluginWorkflow | None = None
    if is_file_argument(args.workflow):
        workflow = load_definition(args.workflow)
        validate_workflow(workflow)
    workflow_id = workflow.workflow_id if workflow else args.workflow

    async with open_session(args) as session:
        orch = session.orchestrator
        if args.detach and not await worker_is_polling(orch.client, orch.task_queue):
            raise UsageError(
                f"--detach needs a worker polling task queue '{orch.task_queue}' (the run "
                "would have no worker once this command exits); start one with "
                "`orchestrator worker`, or run without --detach"
            )
        async with embedded_worker(orch.client, orch.task_queue):
            if workflow is not None:
                print(await register_or_update(orch, workflow), file=sys.stderr)
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
    print_outcome(context)
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
                console = make_console()
                if console.is_terminal:
                    await _watch(orch, execution_id, console, ui_link)
                else:
                    await print_events(orch.events(execution_id))
            return await orch.wait_for_completion(execution_id)
    except TimeoutError:
        raise PluginError(
            Code.Timeout,
            f"execution '{execution_id}' did not finish within {timeout:g}s; it goes on "
            f"whenever a worker polls task queue '{orch.task_queue}' "
            f"(`orchestrator status {execution_id}`)",
        ) from None


async def cmd_status(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        orch = session.orchestrator
        if args.json:
            context = await orch.get_execution_status(args.execution_id)
            print(json.dumps(context.to_json(), indent=2))
            return 0
        console = make_console()
        link = session.ui_link(args.execution_id)
        if args.watch:
            await _watch(orch, args.execution_id, console, link)
        else:
            workflow = await orch.get_execution_definition(args.execution_id)
            context = await orch.get_execution_status(args.execution_id)
            print_view(console, status_view(workflow, context, ui_link=link, now=utc_now()))
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
        view = status_view(workflow, context, ui_link=ui_link, now=utc_now())
        with Live(view, console=console, auto_refresh=False, transient=False) as live:
            while not context.status.is_terminal:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_WATCH_REFRESH):
                        await changed.wait()
                changed.clear()
                if listener.done() and listener.exception() is not None:
                    raise listener.exception()  # type: ignore[misc]
                context = await orch.get_execution_status(execution_id)
                live.update(status_view(workflow, context, ui_link=ui_link, now=utc_now()))
                live.refresh()
        return context
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def cmd_pause(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        orch = session.orchestrator
        await require_worker(orch, args.execution_id)
        await with_update_timeout(orch.pause_execution(args.execution_id), args.execution_id)
    print(f"paused {args.execution_id}")
    return 0


async def cmd_resume(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        orch = session.orchestrator
        await require_worker(orch, args.execution_id)
        await with_update_timeout(orch.resume_execution(args.execution_id), args.execution_id)
    print(f"resumed {args.execution_id}")
    return 0


async def cmd_cancel(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        await session.orchestrator.cancel_execution(args.execution_id)
    print(f"cancellation requested for {args.execution_id}")
    return 0


async def cmd_retry(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        execution_id = await session.orchestrator.retry_execution(args.execution_id)
    print(f"retrying {execution_id} from where it stopped")
    return 0


async def cmd_skip(args: argparse.Namespace) -> int:
    try:
        output = json.loads(args.output)
    except json.JSONDecodeError as exc:
        raise PluginError(Code.InvalidInput, f"--output is not valid JSON: {exc}") from None
    async with open_session(args) as session:
        await session.orchestrator.skip_node(args.execution_id, args.node_id, output)
    print(f"node {args.node_id} of {args.execution_id} completes with the given output")
    return 0


async def cmd_approve(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.data)
    except json.JSONDecodeError as exc:
        raise PluginError(Code.InvalidInput, f"--data is not valid JSON: {exc}") from None
    async with open_session(args) as session:
        await require_worker(session.orchestrator, args.execution_id)
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


async def cmd_send_event(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise PluginError(Code.InvalidInput, f"--payload is not valid JSON: {exc}") from None
    async with open_session(args) as session:
        event_id = await session.orchestrator.send_event(
            args.execution_id,
            args.event_type,
            payload,
            event_id=args.event_id,
            source=args.source,
        )
    print(f"sent event {event_id} to {args.execution_id}")
    return 0


async def cmd_events(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        stream = session.orchestrator.events(args.execution_id, after=args.after)
        await print_events(stream, as_json=args.json)
    return 0
