"""Webhooks: ``orchestrator serve`` (the receiver alone) and ``orchestrator hook ...``."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from datetime import UTC, datetime

from engine.base.extras import require_extra
from engine.cli.common import open_session


async def cmd_serve(args: argparse.Namespace) -> int:
    # FastAPI and uvicorn (the studio extra) load only for this command.
    StudioServer = require_extra("engine.studio", "studio", "orchestrator serve").StudioServer
    async with open_session(args) as session:
        server = StudioServer(session.orchestrator, args.host, args.port, hooks_only=True)
        await server.start()
        print(f"webhooks: {server.url}/hooks/<hook id>", flush=True)
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
    return 0


async def cmd_hook_create(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        secret = await session.orchestrator.create_hook(
            args.hook_id,
            args.workflow_id,
            "event" if args.execution else "start",
            args.execution,
            event_type=args.event_type,
            source=args.source,
            idempotency_field=args.idempotency_field,
            max_body_bytes=args.max_body_bytes,
            rate_per_minute=args.rate_per_minute,
            tolerance_seconds=args.tolerance,
        )
    if args.json:
        print(json.dumps({"hook_id": args.hook_id, "secret": secret}))
    else:
        print(f"created hook {args.hook_id}: POST /hooks/{args.hook_id}")
        print(f"secret (shown only now): {secret}")
    return 0


async def cmd_hook_list(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        hooks = await session.orchestrator.list_hooks()
    if args.json:
        print(json.dumps([hook.model_dump(mode="json") for hook in hooks], indent=2))
        return 0
    if not hooks:
        print("no hooks")
    for hook in hooks:
        target = hook.execution_id if hook.action == "event" else hook.workflow_id
        created = datetime.fromtimestamp(hook.created_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        print(
            f"{hook.hook_id:<24} {hook.action:<6} {target:<40} "
            f"{hook.rate_per_minute}/min  created {created}"
        )
    return 0


async def cmd_hook_delete(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        await session.orchestrator.delete_hook(args.hook_id)
    print(f"deleted hook {args.hook_id}")
    return 0


async def cmd_hook_rotate(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        secret = await session.orchestrator.rotate_hook_secret(args.hook_id, args.grace)
    if args.json:
        print(json.dumps({"hook_id": args.hook_id, "secret": secret}))
    else:
        print(f"new secret of hook {args.hook_id} (shown only now): {secret}")
        if args.grace:
            print(f"the previous secret is accepted for {args.grace:g} more seconds")
    return 0
