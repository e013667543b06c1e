"""Webhooks: ``orchestrator serve`` (the receiver alone) and ``orchestrator hook ...``."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from engine.cli.common import open_session
from engine.hosting.embedded import embedded_worker


async def cmd_hook_create(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        orch = session.orchestrator
        # The definition (or execution) is checked through the registry: a worker answers.
        async with embedded_worker(orch.client, orch.task_queue):
            secret = await orch.create_hook(
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
