"""The one generic node activity: find the plugin, run it, check what it returns.

Every node of every workflow runs through :meth:`NodeActivities.run_plugin_node`. It

* looks the plugin up in the worker's registry (an unknown id is a non-retryable
  ``PluginNotFound``: retrying cannot make it appear);
* heartbeats in the background for the whole call, so a dead worker is noticed within the
  node's ``heartbeat_timeout`` and cancellation reaches the plugin even if the plugin never
  heartbeats itself (not as a local activity, a light node: the worker running it is the
  one running the workflow task, and cancels it directly);
* runs async plugins in a task and synchronous ones on threads of their own, so a blocking
  plugin never stalls other nodes' heartbeats; an attempt that times out or is cancelled stops
  heartbeating at once and gives its plugin a short grace before abandoning it
  (:mod:`activities.capacity`);
* resolves the blob references the engine made in the inputs (anything else shaped like one
  reaches the plugin as plain data; a genuine one whose blob was tampered with fails the node
  for good) and moves large output values to the blob store (:mod:`engine.temporal.blobs`), so no
  payload comes near Temporal's 2 MB limit;
* checks the output before returning it: it must be a JSON object (and, with its large
  values offloaded, small enough for a payload). Failing checks fail the node once,
  non-retryably, instead of letting the SDK turn them into retryable errors that re-run the
  plugin on every attempt;
* maps exceptions to ``ApplicationError`` with a stable ``type``: the ``PluginErrorCode`` for a
  ``PluginError``, else the exception's class name (which ``retry.non_retryable_errors`` can
  name).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._support import TERMINAL_CODES, Heartbeats, failure, invoke, plugin_context
from activities.batch import run_batch
from activities.capacity import PluginThreads
from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import find_json_problem
from engine.language.small_json import is_small
from engine.runtime.contracts import (
    MAX_PAYLOAD_BYTES,
    NODE_ACTIVITY,
    NODE_BATCH_ACTIVITY,
    NodeActivityInput,
    NodeActivityResult,
    NodeBatchInput,
    NodeBatchResult,
)
from engine.temporal.blobs import BlobIntegrityError, BlobStore, blob_threshold, contains_refs
from engine.temporal.telemetry import observed_node_attempt
from plugins import PluginRegistry

log = structlog.get_logger("activities.node")


class NodeActivities:
    """Activities bound to one worker's plugin registry."""

    def __init__(
        self,
        plugins: PluginRegistry,
        *,
        threads: PluginThreads | None = None,
        blobs: BlobStore | None = None,
    ):
        self._plugins = plugins
        self._threads = threads or PluginThreads()
        self._blobs = blobs or BlobStore.configured()
        self._threshold = blob_threshold()

    @activity.defn(name=NODE_ACTIVITY)
    async def run_plugin_node(self, request: NodeActivityInput) -> NodeActivityResult:
        """Run one node's plugin and return its checked output.

        Each attempt is observed: the node's attributes on the current trace span, its
        duration and outcome in the metrics (:mod:`engine.temporal.telemetry`), and its identity
        bound
        to every structlog line logged while it runs (also by loggers other than
        ``ctx.logger``).
        """
        info = activity.info()
        # A light node's workflow runs each attempt as a local activity of its own and says
        # which attempt it is; Temporal's count is the node's otherwise.
        number = request.attempt or info.attempt
        bound = {
            "execution_id": request.execution_id,
            "workflow_id": request.workflow_id,
            "node_id": request.node_id,
            "plugin_id": request.plugin_id,
            "attempt": number,
        }
        with (
            observed_node_attempt(
                activity.metric_meter(),
                workflow_id=request.workflow_id,
                execution_id=request.execution_id,
                node_id=request.node_id,
                plugin_id=request.plugin_id,
                attempt=number,
            ),
            structlog.contextvars.bound_contextvars(**bound),
        ):
            return await self._run(request, info, number)

    @activity.defn(name=NODE_BATCH_ACTIVITY)
    async def run_plugin_batch(self, request: NodeBatchInput) -> NodeBatchResult:
        """Run one node's plugin over a batch of a Splitter map's items, each with the
        node's retries and output checks; one outcome per item (:mod:`activities.batch`)."""
        bound = {
            "execution_id": request.execution_id,
            "workflow_id": request.workflow_id,
            "node_id": request.node_id,
            "plugin_id": request.plugin_id,
            "batch_attempt": activity.info().attempt,
        }
        with structlog.contextvars.bound_contextvars(**bound):
            return await run_batch(
                request,
                plugins=self._plugins,
                threads=self._threads,
                blobs=self._blobs,
                check=self._checked_output,
            )

    async def _run(
        self, request: NodeActivityInput, info: activity.Info, attempt: int
    ) -> NodeActivityResult:
        plugin = self._plugins.get(request.plugin_id)
        if plugin is None:
            message = (
                f"node '{request.node_id}': no plugin '{request.plugin_id}' is registered on "
                f"this worker (task queue '{info.task_queue}'); known plugins: "
                f"{', '.join(self._plugins.ids()) or 'none'}"
            )
            log.warning("plugin not found", node_id=request.node_id, plugin_id=request.plugin_id)
            raise failure(message, PluginErrorCode.PluginNotFound.value, attempt, True)
        checkpoint = info.heartbeat_details[0] if info.heartbeat_details else None
        ctx = plugin_context(
            execution_id=request.execution_id,
            workflow_id=request.workflow_id,
            node_id=request.node_id,
            plugin_id=request.plugin_id,
            checkpoint=checkpoint,
            attempt=attempt,
        )
        logger = ctx.logger
        heartbeats = Heartbeats(checkpoint)
        # A local activity (a light node) has no heartbeats: what the plugin reports is kept.
        ctx._heartbeat = heartbeats.set if info.is_local else heartbeats.record
        heartbeats.start(None if info.is_local else info.heartbeat_timeout)
        try:
            config = plugin.check_config(request.config)
            inputs = request.inputs
            if contains_refs(inputs):
                inputs = await asyncio.to_thread(
                    self._blobs.resolve, inputs, within=request.execution_id
                )
            output = await invoke(
                plugin, inputs, config, ctx, self._threads, on_cancel=heartbeats.stop
            )
        except asyncio.CancelledError:
            ctx._cancelled.set()
            logger.info("node cancelled")
            raise
        except PluginError as exc:
            logger.warning("node attempt failed", error_type=exc.code.value, error=exc.message)
            raise failure(exc.message, exc.code.value, attempt, exc.code in TERMINAL_CODES) from exc
        except ApplicationError as exc:
            logger.warning("node attempt failed", error_type=exc.type, error=exc.message)
            raise
        except BlobIntegrityError as exc:  # the store was changed: another attempt reads the same
            logger.warning("node attempt failed", error_type=type(exc).__name__, error=str(exc))
            message = f"node '{request.node_id}': {exc}"
            raise failure(message, type(exc).__name__, attempt, True) from exc
        except Exception as exc:
            logger.warning("node attempt failed", error_type=type(exc).__name__, exc_info=exc)
            raise failure(str(exc) or type(exc).__name__, type(exc).__name__, attempt) from exc
        finally:
            heartbeats.stop()
        try:
            if _small(output):  # checked at once: cheaper than a thread hop
                checked = self._checked_output(request, output, attempt)
            else:  # a large output is encoded off the event loop (heartbeats go on)
                checked = await asyncio.to_thread(self._checked_output, request, output, attempt)
        except ApplicationError as exc:
            logger.warning("node output rejected", error=exc.message)
            raise
        return NodeActivityResult(output=checked, attempt=attempt)

    def _checked_output(
        self, request: NodeActivityInput, output: Any, attempt: int | None = None
    ) -> dict[str, Any]:
        """The output as it is recorded (JSON, large parts offloaded), or InvalidOutput
        naming what is wrong (``attempt``: the node's, Temporal's when not given)."""
        attempt = attempt or activity.info().attempt
        where = f"node '{request.node_id}' (plugin '{request.plugin_id}')"
        if not isinstance(output, dict):
            raise _invalid_output(
                f"{where} returned {type(output).__name__}, expected a JSON object", attempt
            )
        try:
            encoded = json.dumps(output, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise _invalid_output(
                f"{where} returned a value that is not JSON: {exc}", attempt
            ) from None
        # The JSON form is what is recorded: exactly what downstream nodes will see.
        normalized: dict[str, Any] = json.loads(encoded)
        # Plain JSON as definitions hold it (nesting, 64-bit integers, Unicode text): a value
        # nested past the decoders' limits would otherwise fail the run's workflow task, not
        # this node. Every value takes at least a byte of the encoding, so the count never binds.
        if problem := find_json_problem(normalized, max_values=len(encoded), path="output"):
            raise _invalid_output(
                f"{where} returned an output that is not plain JSON: {problem}", attempt
            )
        if len(encoded) <= self._threshold:
            return normalized
        try:
            return self._blobs.offload(
                request.execution_id, normalized, self._threshold, MAX_PAYLOAD_BYTES
            )
        except ValueError as exc:
            raise _invalid_output(f"{where}: {exc}", attempt) from None


# What the event loop checks itself (see _small): a few values, short strings.
SMALL_OUTPUT_VALUES = 256
SMALL_OUTPUT_CHARS = 16_384


def _small(output: Any) -> bool:
    """Whether checking ``output`` costs less than handing it to a thread: at most
    :data:`SMALL_OUTPUT_VALUES` values whose strings hold at most :data:`SMALL_OUTPUT_CHARS`
    characters in all (:func:`engine.language.small_json.is_small`: the walk stops as soon as
    the budget is spent, so a huge or self-referencing output costs no more than that);
    anything not plain JSON goes to the thread, whose check reports it."""
    return is_small(output, SMALL_OUTPUT_VALUES, SMALL_OUTPUT_CHARS)


def _invalid_output(message: str, attempt: int) -> ApplicationError:
    return failure(message, PluginErrorCode.InvalidOutput.value, attempt, True)
