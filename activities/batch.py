"""The batch activity of a batched Splitter map: one node's plugin over a batch of items.

Each item runs as it would in its own node activity (:mod:`activities.node`): the plugin is
looked up and its configuration checked, blob references in the inputs are resolved, the call
runs on the worker's threads or event loop with the node's ``timeout`` per attempt, and the
output is checked (JSON object, large values to the blob store). The node's retry policy
applies to each item within the activity (attempts, backoff, non-retryable types), so one
item's failure is its own and the others' results are kept. Up to ``concurrency`` items run
at once.

The activity answers one outcome per item and fails only when it cannot run at all; a lost
worker's batch runs again whole (Temporal retries the activity), and only the outcomes of the
attempt that completes are recorded, so nothing counts twice. Plugins' own heartbeat
details are not kept for a retry of a batch (``ctx.checkpoint`` is None in batches). Each
item's idempotency key is the one its unbatched activity would have:
``<run id>/<node>[<splitter>:<index>]``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._support import TERMINAL_CODES, Heartbeats, invoke
from activities.capacity import PluginThreads
from engine.base.errors import PluginError, PluginErrorCode
from engine.runtime.contracts import (
    MAX_PAYLOAD_BYTES,
    BatchItemError,
    BatchItemInput,
    NodeActivityInput,
    NodeBatchInput,
    NodeBatchResult,
)
from engine.temporal.blobs import BlobIntegrityError, BlobStore, contains_refs
from engine.temporal.telemetry import observed_node_attempt
from plugins import Plugin, PluginContext, PluginRegistry

log = structlog.get_logger("activities.batch")
# Outputs at most this large stay inline when a batch's outcomes must shrink to fit a payload.
_SHRUNK_OUTPUT_BYTES = 1024

Check = Callable[[NodeActivityInput, Any], dict[str, Any]]


class _Failed(Exception):
    """One attempt of one item failed."""

    def __init__(self, message: str, error_type: str, non_retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.non_retryable = non_retryable


async def run_batch(
    request: NodeBatchInput,
    *,
    plugins: PluginRegistry,
    threads: PluginThreads,
    blobs: BlobStore,
    check: Check,
) -> NodeBatchResult:
    """Run the batch (see the module docstring); ``check`` checks one output as the node
    activity does (raising its non-retryable ``InvalidOutput``)."""
    info = activity.info()
    plugin = plugins.get(request.plugin_id)
    if plugin is None:
        message = (
            f"node '{request.node_id}': no plugin '{request.plugin_id}' is registered on "
            f"this worker (task queue '{info.task_queue}'); known plugins: "
            f"{', '.join(plugins.ids()) or 'none'}"
        )
        log.warning("plugin not found", node_id=request.node_id, plugin_id=request.plugin_id)
        code = PluginErrorCode.PluginNotFound.value
        return NodeBatchResult(
            outputs=[None] * len(request.items),
            attempts=[info.attempt] * len(request.items),
            errors=[
                BatchItemError(position=position, error_type=code, error=message)
                for position in range(len(request.items))
            ],
        )
    runner = _BatchRun(request, plugin, threads, blobs, info)
    heartbeats = Heartbeats()
    runner.heartbeats = heartbeats
    heartbeats.start(info.heartbeat_timeout)
    try:
        raw = await asyncio.gather(*(runner.item(entry) for entry in request.items))
    finally:
        heartbeats.stop()
    return await asyncio.to_thread(_checked, request, raw, check, blobs)


class _BatchRun:
    def __init__(
        self,
        request: NodeBatchInput,
        plugin: Plugin,
        threads: PluginThreads,
        blobs: BlobStore,
        info: activity.Info,
    ) -> None:
        self.request = request
        self.plugin = plugin
        self.threads = threads
        self.blobs = blobs
        self.info = info
        self.slots = asyncio.Semaphore(request.concurrency)
        self.heartbeats: Heartbeats | None = None
        self.meter = activity.metric_meter()
        # What plugin_context binds, once per batch (each item adds its attempt and index).
        self.logger = structlog.get_logger("plugin").bind(
            execution_id=request.execution_id,
            workflow_id=request.workflow_id,
            node_id=request.node_id,
            plugin_id=request.plugin_id,
        )

    async def item(self, entry: BatchItemInput) -> tuple[int, Any, _Failed | None]:
        """Run one item with the node's retries: (attempts, output, None) or its last
        failure."""
        retry = self.request.options.retry
        attempt = 0
        while True:
            attempt += 1
            async with self.slots:
                try:
                    return attempt, await self._attempt(entry, attempt), None
                except _Failed as failed:
                    delay = retry.delay_after(attempt, failed.error_type, not failed.non_retryable)
                    if delay is None:
                        return attempt, None, failed
            await asyncio.sleep(delay)

    async def _attempt(self, entry: BatchItemInput, attempt: int) -> Any:
        request = self.request
        with observed_node_attempt(
            self.meter,
            workflow_id=request.workflow_id,
            execution_id=request.execution_id,
            node_id=request.node_id,
            plugin_id=request.plugin_id,
            attempt=attempt,
        ):
            return await self._call(entry, attempt)

    async def _call(self, entry: BatchItemInput, attempt: int) -> Any:
        request = self.request
        logger = self.logger.bind(attempt=attempt, item=entry.index)
        ctx = PluginContext(
            execution_id=request.execution_id,
            workflow_id=request.workflow_id,
            node_id=request.node_id,
            plugin_id=request.plugin_id,
            attempt=attempt,
            idempotency_key=(
                f"{self.info.workflow_run_id}/{request.key}[{request.splitter}:{entry.index}]"
            ),
            checkpoint=None,
            logger=logger,
        )
        heartbeats = self.heartbeats
        if heartbeats is not None:
            ctx._heartbeat = lambda *details: heartbeats.record()  # alive; details not kept
        timeout = request.options.timeout
        try:
            config = self.plugin.check_config(request.config)
            inputs = entry.inputs
            if contains_refs(inputs):
                inputs = await asyncio.to_thread(
                    self.blobs.resolve, inputs, within=request.execution_id
                )
            async with asyncio.timeout(timeout):
                return await invoke(self.plugin, inputs, config, ctx, self.threads)
        except TimeoutError:
            logger.warning("node attempt timed out", timeout=timeout)
            raise _Failed(
                f"attempt timed out (StartToClose, {timeout:g}s)", "StartToCloseTimeout", False
            ) from None
        except PluginError as exc:
            logger.warning("node attempt failed", error_type=exc.code.value, error=exc.message)
            raise _Failed(exc.message, exc.code.value, exc.code in TERMINAL_CODES) from exc
        except ApplicationError as exc:
            logger.warning("node attempt failed", error_type=exc.type, error=exc.message)
            raise _Failed(exc.message, exc.type or "ApplicationError", exc.non_retryable) from exc
        except BlobIntegrityError as exc:
            logger.warning("node attempt failed", error_type=type(exc).__name__, error=str(exc))
            message = f"node '{request.node_id}': {exc}"
            raise _Failed(message, type(exc).__name__, True) from exc
        except Exception as exc:
            logger.warning("node attempt failed", error_type=type(exc).__name__, exc_info=exc)
            name = type(exc).__name__
            raise _Failed(str(exc) or name, name, False) from exc


def _checked(
    request: NodeBatchInput,
    raw: list[tuple[int, Any, _Failed | None]],
    check: Check,
    blobs: BlobStore,
) -> NodeBatchResult:
    """Each item's outcome with its output checked as the node activity checks it; then, if
    the outcomes together would not fit a payload, the largest outputs move to the blob
    store until they do."""
    node = NodeActivityInput(
        execution_id=request.execution_id,
        workflow_id=request.workflow_id,
        node_id=request.node_id,
        node_name=request.node_name,
        plugin_id=request.plugin_id,
    )
    result = NodeBatchResult()
    sizes: list[int] = []
    # Errors share the payload with the outputs: each keeps a fair part of it.
    most = max(200, min(10_000, MAX_PAYLOAD_BYTES // (2 * max(1, len(request.items)))))
    for position, (attempts, output, failed) in enumerate(raw):
        result.attempts.append(attempts)
        if failed is None:
            try:
                checked = check(node, output)
            except ApplicationError as exc:  # InvalidOutput: retrying cannot fix it
                failed = _Failed(exc.message, exc.type or "InvalidOutput", True)
            else:
                result.outputs.append(checked)
                sizes.append(len(json.dumps(checked, separators=(",", ":"))))
                continue
        result.outputs.append(None)
        result.errors.append(
            BatchItemError(
                position=position,
                error_type=failed.error_type,
                error=failed.message[:most],
                retryable=not failed.non_retryable,
            )
        )
        sizes.append(len(failed.message[:most]))
    total = sum(sizes)
    for position in sorted(range(len(sizes)), key=sizes.__getitem__, reverse=True):
        output = result.outputs[position]
        if total <= MAX_PAYLOAD_BYTES or sizes[position] <= _SHRUNK_OUTPUT_BYTES:
            break
        if output is None:
            continue
        try:
            shrunk = blobs.offload(
                request.execution_id, output, _SHRUNK_OUTPUT_BYTES, MAX_PAYLOAD_BYTES
            )
        except ValueError:
            continue
        size = len(json.dumps(shrunk, separators=(",", ":")))
        result.outputs[position] = shrunk
        total += size - sizes[position]
        sizes[position] = size
    return result
