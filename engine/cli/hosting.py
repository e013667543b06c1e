"""Commands that host something: a worker, the studio, the embedded server; and blobs-gc."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from engine.base.errors import PluginError
from engine.base.extras import require_extra
from engine.cli.common import Code, open_session
from engine.cli.errors import UsageError
from engine.cli.parser import ENV_STUDIO_TOKEN
from engine.hosting.devserver import port_open
from engine.hosting.embedded import (
    embedded_ports,
    embedded_worker,
    ensure_server,
    server_info,
    start_server,
    stop_server,
)
from engine.hosting.worker import run_worker
from plugins.builtin._files import protect

if TYPE_CHECKING:
    from engine.client.orchestrator import AdvancedPluginOrchestrator
    from engine.studio.server import StudioServer


async def cmd_worker(args: argparse.Namespace) -> int:
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


async def cmd_studio(args: argparse.Namespace) -> int:
    # FastAPI and uvicorn (the studio extra) load only for this command.
    StudioServer = require_extra("engine.studio", "studio", "orchestrator studio").StudioServer

    token = studio_token(args)  # checked before anything starts
    async with open_session(args) as session:
        orch = session.orchestrator
        server = StudioServer(orch, args.host, args.port, ui_url=session.ui_url, token=token)
        async with _nodes_run_here(args, orch):
            await server.start()
            print(f"studio: {server.url}", flush=True)
            await serve_until_stopped(server)
    return 0


def _nodes_run_here(
    args: argparse.Namespace, orch: AdvancedPluginOrchestrator
) -> contextlib.AbstractAsyncContextManager[object]:
    """Against the embedded server, a serving command runs nodes itself while no worker polls
    (one command to design, receive and run); against a cluster that is the workers' job."""
    embedded = not (args.address or os.environ.get("TEMPORAL_ADDRESS"))
    if embedded and not args.no_worker:
        return embedded_worker(orch.client, orch.task_queue)
    return contextlib.nullcontext()


async def serve_until_stopped(server: StudioServer) -> None:
    """Serve until the server stops or SIGTERM / SIGINT arrives (as PID 1 in a container
    SIGTERM would otherwise be ignored), then stop it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
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


async def cmd_serve(args: argparse.Namespace) -> int:
    # FastAPI and uvicorn (the studio extra) load only for this command.
    StudioServer = require_extra("engine.studio", "studio", "orchestrator serve").StudioServer
    async with open_session(args) as session:
        orch = session.orchestrator
        server = StudioServer(orch, args.host, args.port, hooks_only=True)
        async with _nodes_run_here(args, orch):
            await server.start()
            print(f"webhooks: {server.url}/hooks/<hook id>", flush=True)
            await serve_until_stopped(server)
    return 0


def studio_token(args: argparse.Namespace) -> str | None:
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
        # The studio runs nodes in this process when no worker polls: its plugins must not
        # read the token file (the environment does not name it, so say so here).
        protect(args.token_file, "the studio's token file")
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


def cmd_server_start(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    default_port, default_ui_port = embedded_ports()
    port = default_port if args.port is None else args.port
    ui_port = default_ui_port if args.ui_port is None else args.ui_port
    running = server_info(data_dir)
    if running is None:
        if port_open("127.0.0.1", port):
            raise PluginError(
                Code.ServerUnavailable,
                f"port {port} is in use (another Temporal server?); pick another with "
                "--port, or use that server with --address",
            )
        running = start_server(data_dir, port, ui_port)
        print(f"started the embedded Temporal server (pid {running.pid})")
    else:
        print(f"the embedded Temporal server is already running (pid {running.pid})")
    _print_server(running.address, running.ui_url, running.db_file)
    print(f"stop it with: orchestrator server stop --data-dir {data_dir}")
    return 0


def cmd_server_stop(args: argparse.Namespace) -> int:
    if stop_server(args.data_dir):
        print(f"stopped the embedded Temporal server of {args.data_dir}")
    else:
        print(f"no embedded Temporal server was running from {args.data_dir}")
    return 0


def cmd_server_status(args: argparse.Namespace) -> int:
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


async def cmd_blobs_gc(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        removed = await session.orchestrator.collect_blobs(older_than=args.older_than_days * 86400)
    for execution_id in removed:
        print(f"removed the blobs of {execution_id}")
    print(f"{len(removed)} executions' blobs removed from {session.orchestrator.blobs.location}")
    return 0
