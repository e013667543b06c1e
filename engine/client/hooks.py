"""Webhooks on the engine's side: creating hooks (checked against what they point at) and
carrying out a verified delivery, idempotently, through Temporal's own deduplication.

A delivery names a key: its ``Idempotency-Key`` header, else the body field the hook names,
else the digest of the signed message (so a replayed request is a repeat too). The key and
the hook id give a fixed suffix, ``hook-<32 hex>``:

* a ``start`` hook starts the execution ``<workflow id>/run-hook-<32 hex>`` with Temporal's
  ``REJECT_DUPLICATE`` id reuse policy: a repeat finds it (running or ended, for as long as
  the namespace retains it) and starts nothing;
* an ``event`` hook sends the event with that id: the EventDriven execution drops an event id
  it has seen (among its last ``DEDUP_WINDOW`` ids).

HTTP lives in :mod:`engine.studio.routes.hooks`; the records in :mod:`engine.client.hook_store`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.client import WorkflowExecutionStatus as TemporalStatus

from engine.base.errors import PluginError, PluginErrorCode
from engine.client import executions
from engine.client.hook_store import DEFAULT_MAX_BODY, HookInfo, HookRecord, HookStore
from engine.language.models import PluginWorkflow, describe_validation_error
from engine.language.validation import check_id
from engine.runtime.bounds import (
    MAX_EVENT_BYTES,
    MAX_EVENT_TYPE_CHARS,
    MAX_SOURCE_CHARS,
    text_problem,
)
from engine.runtime.contracts import MAX_INPUT_BYTES, execution_id_for


class AdvancedPluginOrchestrator(Protocol):
    """What this module uses of :class:`engine.client.orchestrator.AdvancedPluginOrchestrator`
    (which imports this module)."""

    client: Client
    task_queue: str
    hook_store: HookStore

    async def get_workflow(self, workflow_id: str) -> PluginWorkflow: ...

    async def execute_workflow(
        self,
        workflow_id: str,
        input_data: dict[str, Any] | None = None,
        *,
        execution_key: str | None = None,
    ) -> str: ...

    async def send_event(
        self,
        execution_id: str,
        event_type: str,
        payload: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        source: str | None = None,
        timeout: float = 60.0,
    ) -> str: ...


Code = PluginErrorCode

#: The longest idempotency key (header or body field), in characters.
MAX_KEY_CHARS = 200
#: How long an event delivery waits for a busy execution to take it, in seconds.
EVENT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Delivery:
    """What a delivery did: the execution it started (or found) or sent the event to."""

    execution_id: str
    duplicate: bool
    event_id: str | None = None


def delivery_suffix(hook_id: str, key: str) -> str:
    """``hook-`` and 32 hex digits of SHA-256 over the hook id and the delivery's key."""
    digest = hashlib.sha256(f"{hook_id}\n{key}".encode()).hexdigest()
    return f"hook-{digest[:32]}"


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an idempotency key, or None."""
    if not key or len(key) > MAX_KEY_CHARS or not all(" " <= c <= "~" for c in key):
        return f"an idempotency key is 1-{MAX_KEY_CHARS} printable ASCII characters"
    return None


async def create_hook(
    orch: AdvancedPluginOrchestrator,
    hook_id: str,
    workflow_id: str,
    action: Literal["start", "event"],
    execution_id: str | None,
    options: dict[str, Any],
) -> str:
    """Check and store a new hook; return its secret. See
    :meth:`AdvancedPluginOrchestrator.create_hook`."""
    if reason := check_id("hook_id", hook_id):
        raise PluginError(Code.InvalidInput, reason)
    if action not in ("start", "event"):
        raise PluginError(Code.InvalidInput, f"action must be 'start' or 'event', not {action!r}")
    definition = await orch.get_workflow(workflow_id)
    if action == "start":
        if execution_id is not None:
            raise PluginError(
                Code.InvalidInput, "a 'start' hook starts executions: give no execution_id"
            )
        limit = MAX_INPUT_BYTES
    else:
        if not execution_id:
            raise PluginError(
                Code.InvalidInput, "an 'event' hook needs the execution_id it sends events to"
            )
        await _check_event_target(orch, workflow_id, execution_id)
        limit = MAX_EVENT_BYTES
    for field, bound in (("event_type", MAX_EVENT_TYPE_CHARS), ("source", MAX_SOURCE_CHARS)):
        value = options.get(field)
        if value is not None and (problem := text_problem(field, value, bound)):
            raise PluginError(Code.InvalidInput, problem)
    source = options.get("source")
    if source is not None and source not in {node.node_id for node in definition.nodes}:
        raise PluginError(
            Code.InvalidInput, f"workflow '{workflow_id}' has no node {str(source)[:100]!r}"
        )
    key_field = options.get("idempotency_field")
    if key_field is not None and (problem := text_problem("idempotency_field", key_field, 100)):
        raise PluginError(Code.InvalidInput, problem)
    max_body = options.get("max_body_bytes") or min(DEFAULT_MAX_BODY, limit)
    if not isinstance(max_body, int) or not 0 < max_body <= limit:
        raise PluginError(
            Code.InvalidInput, f"max_body_bytes must be 1 to {limit:,} for a '{action}' hook"
        )
    try:
        info = HookInfo.model_validate(
            {
                **{k: v for k, v in options.items() if v is not None},
                "hook_id": hook_id,
                "workflow_id": workflow_id,
                "action": action,
                "execution_id": execution_id,
                "max_body_bytes": max_body,
                "namespace": orch.client.namespace,
                "task_queue": orch.task_queue,
                "created_at": time.time(),
            }
        )
    except ValidationError as exc:
        raise PluginError(
            Code.InvalidInput, f"hook '{hook_id}': {describe_validation_error(exc)}"
        ) from None
    return await asyncio.to_thread(orch.hook_store.create, info)


async def _check_event_target(
    orch: AdvancedPluginOrchestrator, workflow_id: str, execution_id: str
) -> None:
    handle = orch.client.get_workflow_handle(execution_id)
    description = await executions.describe(handle, execution_id)
    memo = await description.memo()
    if memo.get("workflow_id") != workflow_id or memo.get("execution_mode") != "event_driven":
        raise PluginError(
            Code.InvalidInput,
            f"execution '{execution_id}' is not an EventDriven execution of '{workflow_id}'",
        )
    if description.status is not TemporalStatus.RUNNING:
        raise PluginError(
            Code.InvalidState,
            f"execution '{execution_id}' has ended "
            f"({executions.status_name(description.status)}): events go to running ones",
        )


async def deliver(
    orch: AdvancedPluginOrchestrator, hook: HookRecord, payload: dict[str, Any], key: str
) -> Delivery:
    """Carry out a verified delivery: start the hook's execution or send its event, at most
    once per key (see the module docstring).

    Raises:
        PluginError: what :meth:`~AdvancedPluginOrchestrator.execute_workflow` or
            :meth:`~AdvancedPluginOrchestrator.send_event` raise.
    """
    suffix = delivery_suffix(hook.hook_id, key)
    if hook.action == "event":
        assert hook.execution_id is not None
        event_id = await orch.send_event(
            hook.execution_id,
            hook.event_type,
            payload,
            event_id=suffix,
            source=hook.source,
            timeout=EVENT_TIMEOUT,
        )
        return Delivery(hook.execution_id, duplicate=False, event_id=event_id)
    execution_id = execution_id_for(hook.workflow_id, suffix)
    # A repeat is answered without reading the definition again (it may have changed or
    # gone since); a repeat racing the first start is caught by Temporal below.
    try:
        await executions.describe(orch.client.get_workflow_handle(execution_id), execution_id)
    except PluginError as exc:
        if exc.code is not Code.ExecutionNotFound:
            raise
    else:
        return Delivery(execution_id, duplicate=True)
    try:
        started = await orch.execute_workflow(hook.workflow_id, payload, execution_key=suffix)
    except PluginError as err:
        if err.code is Code.WorkflowAlreadyExists and "execution_id" in err.details:
            return Delivery(str(err.details["execution_id"]), duplicate=True)
        raise
    return Delivery(started, duplicate=False)
