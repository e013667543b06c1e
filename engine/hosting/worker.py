"""Building and running a worker: the interpreter and registry workflows plus the node
activity bound to a plugin registry.

    worker = create_worker(client, task_queue="plugin-orchestrator",
                           plugins=PluginRegistry.with_builtins())
    async with worker:
        ...

:func:`run_worker` is what ``python worker.py`` and ``orchestrator worker`` run: it connects,
serves until SIGTERM or SIGINT, then drains: no new tasks are taken, running activities get
``graceful_shutdown`` seconds to finish before they are cancelled (a cancelled node is retried
by another worker). With ``metrics_bind`` (or ``ORCHESTRATOR_METRICS_BIND``) it serves
Prometheus metrics on ``http://<bind>/metrics``; tracing comes with the client
(:mod:`engine.temporal.telemetry`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.runtime import Runtime
from temporalio.worker import FixedSizeSlotSupplier, Worker, WorkerTuner

from activities import (
    AdmissionActivities,
    LongRunningActivities,
    NodeActivities,
    RegistryActivities,
)
from activities.capacity import ActivitySlots, PluginThreads
from engine.base.logging import configure_logging, hide_traceback_locals
from engine.hosting import lifetime, local_workers
from engine.hosting.connection import connect, default_task_queue, with_pydantic_converter
from engine.runtime.contracts import (
    CATALOG_WORKERS_MEMO_KEY,
    CATALOG_WORKFLOW,
    PUBLISH_SIGNAL,
    WITHDRAW_SIGNAL,
    CatalogEntry,
    CatalogState,
    catalog_entity_id,
)
from engine.temporal.admission import PluginAdmission
from engine.temporal.blobs import BlobStore
from engine.temporal.catalog import describe_plugins
from engine.temporal.registry import PluginCatalog, PluginWorkflowDefinition
from engine.temporal.sandbox import workflow_runner
from engine.temporal.telemetry import (
    entity_search_attributes,
    metrics_bind_address,
    metrics_runtime,
)
from engine.temporal.workflow import PluginWorkflowExecution
from plugins import PluginRegistry

log = structlog.get_logger("engine.hosting.worker")


def create_worker(
    client: Client,
    *,
    task_queue: str | None = None,
    plugins: PluginRegistry | None = None,
    max_concurrent_activities: int = 100,
    max_concurrent_workflow_tasks: int | None = None,
    max_cached_workflows: int = 1000,
    graceful_shutdown: float = 30.0,
    plugin_threads: int = 32,
    max_abandoned_threads: int = 128,
    heartbeat_throttle: float = 1.0,
    identity: str | None = None,
    blob_store: BlobStore | None = None,
) -> EngineWorker:
    """A worker hosting the engine's workflows and activities, ready for ``async with``.

    Args:
        client: Connected client (given the engine's data converter if it lacks it).
        task_queue: Queue to poll; default ``TEMPORAL_TASK_QUEUE`` or ``plugin-orchestrator``.
        plugins: Plugins this worker can run; default: the built-ins and the plugins of
            installed packages (entry points ``orchestrator.plugins``).
        max_concurrent_activities: Node attempts running at once on this worker.
        max_concurrent_workflow_tasks: Workflow tasks at once (SDK default if None).
        max_cached_workflows: Workflow cache size; 0 forces a replay on every task (tests).
        graceful_shutdown: Seconds running activities get to finish on shutdown.
        plugin_threads: Synchronous plugin calls running at once (each on a thread of its
            own; :mod:`activities.capacity`).
        max_abandoned_threads: Threads of timed-out or cancelled synchronous plugin calls
            that may still be running before the worker counts as saturated and takes no
            more activities until some return (it logs an error and sets the
            ``orchestrator_worker_saturated`` gauge).
        heartbeat_throttle: At most one heartbeat per running node reaches the server in
            this many seconds; a cancellation reaches a plugin within about this time.
        identity: How the worker names itself to Temporal (default: the client's).
        blob_store: Where large outputs go (default: ``ORCHESTRATOR_BLOB_STORE``, else the
            data directory's ``blobs``, signing references with ``ORCHESTRATOR_BLOB_KEY``
            or the store's own key: see :mod:`engine.temporal.blobs`).

    Raises:
        PluginError: ``InvalidConfiguration`` if those settings are wrong.
    """
    hide_traceback_locals()
    registry = plugins if plugins is not None else PluginRegistry.default()
    queue = task_queue or default_task_queue()
    runtime = client.service_client.config.runtime or Runtime.default()
    meter = runtime.metric_meter.with_additional_attributes({"task_queue": queue})
    threads = PluginThreads(plugin_threads, max_abandoned_threads, meter)
    activities = NodeActivities(registry, threads=threads, blobs=blob_store)
    long_running = LongRunningActivities(registry, with_pydantic_converter(client), threads)
    registry_reads = RegistryActivities(with_pydantic_converter(client))
    admissions = AdmissionActivities(with_pydantic_converter(client))
    worker = Worker(
        with_pydantic_converter(client),
        task_queue=queue,
        workflows=[
            PluginWorkflowExecution,
            PluginWorkflowDefinition,
            PluginCatalog,
            PluginAdmission,
        ],
        activities=[
            activities.run_plugin_node,
            activities.run_plugin_batch,
            long_running.watch_event_source,
            long_running.run_stream,
            registry_reads.read_registered_definition,
            admissions.claim_execution_slot,
            admissions.check_admitted_executions,
        ],
        tuner=_tuner(
            max_concurrent_activities,
            max_concurrent_workflow_tasks,
            threads if _runs_plugin_threads(registry) else None,
        ),
        max_cached_workflows=max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=graceful_shutdown),
        max_heartbeat_throttle_interval=timedelta(seconds=heartbeat_throttle),
        default_heartbeat_throttle_interval=timedelta(seconds=heartbeat_throttle),
        workflow_runner=workflow_runner(),
        identity=identity,
        # After a worker stops, its workflows' tasks (and queries) wait this long on its
        # sticky queue before any worker may take them: keep the stall after a restart short.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
    )
    return EngineWorker(worker, with_pydantic_converter(client), registry, identity)


def _tuner(
    max_concurrent_activities: int,
    max_concurrent_workflow_tasks: int | None,
    threads: PluginThreads | None,
) -> WorkerTuner:
    """The SDK's fixed slots (its defaults: 100), but activity slots that stop while
    abandoned plugin threads saturate the worker (:class:`ActivitySlots`) when ``threads``
    is given: the worker has synchronous plugins, whose calls run on those threads.

    A worker whose plugins are all async never starts a plugin thread, so it can never be
    saturated: it gets the SDK's own fixed activity slots. They cost nothing in Python,
    where ActivitySlots, a custom supplier, is called by the SDK core for every activity
    (an async reservation scheduled on the event loop, a release from a core thread, each
    taking the GIL): about 0.5 ms of the process's CPU per activity, half of what a
    100-node fan-out costs the engine's worker beyond a hand-written workflow's.
    """
    activity_slots = (
        ActivitySlots(max_concurrent_activities, threads)
        if threads is not None
        else FixedSizeSlotSupplier(max_concurrent_activities)
    )
    return WorkerTuner.create_composite(
        workflow_supplier=FixedSizeSlotSupplier(max_concurrent_workflow_tasks or 100),
        activity_supplier=activity_slots,
        local_activity_supplier=FixedSizeSlotSupplier(100),
        nexus_supplier=FixedSizeSlotSupplier(100),
    )


def _runs_plugin_threads(registry: PluginRegistry) -> bool:
    """Whether any plugin of ``registry`` is synchronous (its calls run on plugin threads,
    which a hung call can leave abandoned). Read when the worker is created: plugins
    registered later do not make its activity slots stop on saturation."""
    return any(not plugin.is_async for plugin in registry.plugins())


class EngineWorker:
    """A Temporal worker that publishes its plugin catalog to its task queue while it runs
    (:mod:`engine.temporal.catalog`). Use it as ``async with`` or ``await worker.run()``."""

    def __init__(
        self, worker: Worker, client: Client, plugins: PluginRegistry, identity: str | None
    ) -> None:
        self.worker = worker
        self.client = client
        self.plugins = plugins
        self.identity = identity or client.identity
        # Starts from this process on its queue are eager while it runs (local_workers).
        self._serving = contextlib.ExitStack()
        self._withdrawn = False

    @property
    def task_queue(self) -> str:
        return self.worker.task_queue

    async def __aenter__(self) -> EngineWorker:
        await self.publish()
        await self.worker.__aenter__()
        self._serving.enter_context(local_workers.serving(self.client, self.task_queue))
        await self._published()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._serving.close()
        try:
            await self.withdraw()
        finally:
            await self.worker.__aexit__(*exc)  # type: ignore[arg-type]

    async def run(self) -> None:
        """Publish the catalog and run until shut down (:meth:`shutdown`)."""
        await self.publish()
        try:
            with local_workers.serving(self.client, self.task_queue):
                await self.worker.run()
        finally:
            if not self._withdrawn:  # stopped otherwise: nothing left to process it here
                await self.withdraw(wait=False)

    async def shutdown(self) -> None:
        """Leave the catalog while this worker still processes the entity, then stop."""
        await self.withdraw()
        await self.worker.shutdown()

    async def publish(self) -> None:
        """Tell the task queue's catalog which plugins this worker runs."""
        entry = CatalogEntry(identity=self.identity, plugins=describe_plugins(self.plugins))
        await self.client.start_workflow(
            CATALOG_WORKFLOW,
            CatalogState(),
            id=catalog_entity_id(self.task_queue),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=PUBLISH_SIGNAL,
            start_signal_args=[entry],
            static_summary=f"plugin catalog of {self.task_queue}",
            search_attributes=entity_search_attributes(),
        )

    async def _published(self, timeout: float = 10.0) -> None:
        """Wait until the catalog lists this worker, so registrations made from here on are
        checked against its plugins (the catalog entity runs on this very worker)."""
        if not await self._listed_within(True, timeout):
            log.warning(
                "the plugin catalog did not list this worker in time", task_queue=self.task_queue
            )

    async def _listed_within(self, listed: bool, timeout: float) -> bool:
        """Whether the catalog's memo comes to list this worker (``listed``), or to no longer
        list it, within ``timeout`` seconds."""
        handle = self.client.get_workflow_handle(catalog_entity_id(self.task_queue))
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            description = await handle.describe()
            workers = await description.memo_value(CATALOG_WORKERS_MEMO_KEY, [])
            if (self.identity in workers) is listed:
                return True
            await asyncio.sleep(0.02)
        return False

    async def withdraw(self, *, wait: bool = True, timeout: float = 2.0) -> None:
        """Take this worker's entry out of the catalog (best effort: it may be gone).

        ``wait``: until the catalog no longer lists this worker (at most ``timeout``
        seconds), while this worker still polls. The entity's task for the withdrawal is
        then done before the worker stops; one left behind would wait on this worker's
        sticky queue after it is gone, and the next process's worker would wait for it to
        publish: 7.6 s here for `orchestrator run` right after another command, 0.15 s
        with the wait."""
        self._withdrawn = True
        handle = self.client.get_workflow_handle(catalog_entity_id(self.task_queue))
        with contextlib.suppress(Exception):
            await handle.signal(WITHDRAW_SIGNAL, self.identity)
            if wait:
                await self._listed_within(False, timeout)


async def run_worker(
    *,
    target: str | None = None,
    namespace: str | None = None,
    task_queue: str | None = None,
    plugins: PluginRegistry | None = None,
    max_concurrent_activities: int = 100,
    graceful_shutdown: float = 30.0,
    stop: asyncio.Event | None = None,
    metrics_bind: str | None = None,
) -> None:
    """Connect, serve until SIGTERM/SIGINT (or ``stop`` is set), then drain and return.

    ``metrics_bind`` (``host:port``, default ``ORCHESTRATOR_METRICS_BIND``, else none) serves
    the SDK's and the engine's metrics for Prometheus on ``http://<bind>/metrics``.
    """
    configure_logging()
    bind = metrics_bind_address(metrics_bind)
    # The metrics runtime is shared per address; any other is this call's, shut down at
    # its end so no SDK thread outlives it (engine.hosting.lifetime).
    key, runtime = (None, metrics_runtime(bind)) if bind else lifetime.new_runtime()
    try:
        client = await connect(target, namespace, runtime=runtime)
        del runtime
        await _serve(
            create_worker(
                client,
                task_queue=task_queue,
                plugins=plugins,
                max_concurrent_activities=max_concurrent_activities,
                graceful_shutdown=graceful_shutdown,
            ),
            stop or asyncio.Event(),
            graceful_shutdown,
            f"http://{bind}/metrics" if bind else None,
        )
        del client
    finally:
        if key is not None:
            lifetime.release_runtime(key)


async def _serve(
    worker: EngineWorker, stop: asyncio.Event, graceful_shutdown: float, metrics: str | None
) -> None:
    """Run ``worker`` until SIGTERM, SIGINT or ``stop``, then drain it."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker started",
        task_queue=worker.task_queue,
        namespace=worker.client.namespace,
        plugins=worker.plugins.ids(),
        metrics=metrics,
    )
    try:
        async with worker:
            await stop.wait()
            log.info("worker draining", graceful_shutdown_seconds=graceful_shutdown)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("worker stopped")
