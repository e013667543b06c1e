"""What the commands share: the session (server, connection), loading definition files,
printing events and outcomes, the terminal console, and the checks before control requests."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from temporalio.client import WorkflowExecutionStatus as TemporalStatus

from engine.base.data_dir import default_data_dir
from engine.base.errors import PluginError, PluginErrorCode
from engine.base.logging import configure_logging
from engine.client import executions
from engine.client.hook_store import ENV_HOOKS_FILE, HOOKS_FILE_NAME
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.hosting.connection import default_namespace, default_task_queue
from engine.hosting.embedded import (
    ENV_UI_URL,
    ensure_server,
    temporal_ui_link,
    worker_is_polling,
)
from engine.language.models import (
    PluginWorkflow,
    WorkflowEvent,
    WorkflowExecutionContext,
)

Code = PluginErrorCode


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
async def open_session(args: argparse.Namespace) -> AsyncIterator[Session]:
    address, ui_url = await ensure_server(args.address, args.data_dir)
    # Hooks are kept in the data directory the command names, unless the variable says where.
    hooks_file = None if os.environ.get(ENV_HOOKS_FILE) else args.data_dir / HOOKS_FILE_NAME
    async with await AdvancedPluginOrchestrator.connect(
        address, args.namespace, args.task_queue, hooks_file=hooks_file
    ) as orchestrator:
        yield Session(orchestrator, args.ui_url or ui_url)


def load_definition(path: str) -> PluginWorkflow:
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise PluginError(Code.InvalidInput, f"cannot read {path}: {exc.strerror}") from None
    # Strict: duplicate keys, NaN, numbers beyond 64 bits and deep nesting are refused.
    return PluginWorkflow.from_json_text(text, source=path)


def is_file_argument(value: str) -> bool:
    # Workflow ids cannot contain a slash, so a path with one is always meant as a file.
    return "/" in value or os.sep in value or Path(value).is_file()


async def print_events(stream: AsyncIterator[WorkflowEvent], *, as_json: bool = False) -> None:
    try:
        async for event in stream:
            if as_json:
                print(json.dumps(event.to_json()), flush=True)
            else:
                print_event(event)
    finally:
        # Close the generator here (on timeout too), not in asyncio.run's final sweep.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def print_event(event: WorkflowEvent) -> None:
    parts = [f"{event.sequence:>4}", f"{event.type.value:<26}", f"{event.node_id or '-':<20}"]
    parts.append(f"{event.progress:>5.0%}" if event.progress is not None else " " * 5)
    if event.error:
        parts.append(event.error)
    print("  ".join(parts).rstrip(), flush=True)


def print_outcome(context: WorkflowExecutionContext) -> None:
    print(f"status: {context.status.value}")
    for message in context.error_messages:
        print(f"error: {message}")
    results = context.execution_data.get("results")
    print("results: " + json.dumps(results if results is not None else {}, indent=2))


# How long pause and resume wait for the execution's worker to take the request.
UPDATE_TIMEOUT = 30.0


async def require_worker(orch: AdvancedPluginOrchestrator, execution_id: str) -> None:
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


async def with_update_timeout(request: Coroutine[Any, Any, None], execution_id: str) -> None:
    try:
        async with asyncio.timeout(UPDATE_TIMEOUT):
            await request
    except TimeoutError:
        raise PluginError(
            Code.WorkerUnavailable,
            f"execution '{execution_id}': no worker took the request within "
            f"{UPDATE_TIMEOUT:g}s; is a worker running on its task queue?",
        ) from None


def make_console() -> Console:
    # Pipes and files get plain text, wide enough that rows do not fold.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def print_view(console: Console, view: RenderableType) -> None:
    if console.is_terminal:
        console.print(view)
        return
    with console.capture() as capture:
        console.print(view)
    print("\n".join(line.rstrip() for line in capture.get().splitlines()))


def utc_now() -> datetime:
    return datetime.now(UTC)


def fill_defaults(args: argparse.Namespace) -> None:
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


def quiet_logging() -> None:
    """Logging of commands other than ``worker``: warnings only, unless
    ``ORCHESTRATOR_LOG_LEVEL`` says otherwise."""
    level = os.environ.get("ORCHESTRATOR_LOG_LEVEL")
    # Plugins log through structlog, which would print to stdout unconfigured.
    configure_logging(level or "WARNING")
    if not level:
        # The SDK logs each failed node attempt with a traceback; the run's outcome already
        # names the node and the error.
        logging.getLogger("temporalio.activity").setLevel(logging.ERROR)


async def register_or_update(orch: AdvancedPluginOrchestrator, workflow: PluginWorkflow) -> str:
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
