"""``AdvancedPluginOrchestrator``: the spec's API, async, with Temporal as the only state.

Nothing is kept in this object but a client and a few seconds of "what I just wrote" (so
listings read this process's own writes even while Temporal's visibility store catches up).
Definitions live in registry entity workflows (:mod:`engine.temporal.registry`), executions are
interpreter workflows (:mod:`engine.temporal.workflow`), so every process sees the same state and
every process can be restarted.

Every method returns its value or raises :class:`~engine.base.errors.PluginError`; Temporal's
exceptions are translated here, at the boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn, cast

import structlog
from temporalio.client import (
    Client,
    WorkflowHandle,
)
from temporalio.client import (
    WorkflowExecutionStatus as TemporalStatus,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from engine.base.errors import PluginError, PluginErrorCode
from engine.client import executions, hooks, schedules
from engine.client.catalog_reads import StartCatalogReads
from engine.client.definition_reads import DefinitionReads
from engine.client.execution_list import ExecutionSummary, list_executions
from engine.client.hook_store import HookInfo, HookStore
from engine.client.schedules import OverlapName, ScheduleDetails, ScheduleSummary
from engine.client.starts import StartRequest
from engine.hosting import lifetime, local_workers
from engine.hosting.connection import connect, default_task_queue, with_pydantic_converter
from engine.hosting.embedded import worker_is_polling
from engine.language.engine_nodes import SUBWORKFLOW
from engine.language.models import (
    PluginWorkflow,
    WorkflowConnection,
    WorkflowEvent,
    WorkflowExecutionContext,
    WorkflowExecutionMode,
    WorkflowNode,
)
from engine.language.modification import DefinitionChange, apply_change
from engine.language.validation import MAX_TEMPORAL_ID_LENGTH, check_id
from engine.runtime.bounds import (
    MAX_COMMENT_CHARS,
    MAX_EVENT_BYTES,
    MAX_EVENT_ID_CHARS,
    MAX_EVENT_TYPE_CHARS,
    MAX_NAME_CHARS,
    MAX_SOURCE_CHARS,
    event_problem,
    json_bytes,
    long_run_problem,
    text_problem,
)
from engine.runtime.compensation import retry_refusal
from engine.runtime.contracts import (
    CATALOG_MEMO_KEY,
    DEFINITION_WORKFLOW,
    EXECUTION_WORKFLOW,
    MAX_INPUT_BYTES,
    ApprovalDecision,
    DefinitionState,
    EarlierRecords,
    EventsSignal,
    ExecutionInput,
    ExecutionOutcome,
    IncomingEvent,
    PluginInfo,
    SkipNode,
    catalog_entity_id,
    definition_entity_id,
    execution_id_for,
    workflow_id_of_entity,
)
from engine.temporal.admission_requests import give_back, reserve_slot
from engine.temporal.blobs import BlobIntegrityError, BlobReferenceError, BlobStore
from engine.temporal.catalog import light_plugins, uses_auto, validate_with_catalog
from engine.temporal.telemetry import (
    ENTITY_DIVISION_CLAUSE,
    entity_search_attributes,
    search_attributes_enabled,
    start_search_attributes,
)
from engine.temporal.translation import translate_errors, translate_rpc

# How long this process trusts its own writes over the visibility store.
_OVERLAY_SECONDS = 30.0
# Seconds a query may wait: past Temporal's default workflow task timeout (10 s), after
# which the task of a stopped worker goes to another one (see the class docstring).
log = structlog.get_logger("engine.client.orchestrator")
QUERY_TIMEOUT = 15.0
_BATCH_MODES = (
    WorkflowExecutionMode.Sequential,
    WorkflowExecutionMode.Parallel,
    WorkflowExecutionMode.Conditional,
)
_EXECUTION_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
# What a retry keeps of each node's earlier record (results travel as its completed nodes).
_KEPT_RECORD_FIELDS = ("status", "attempts", "started_at", "completed_at", "skipped_by_operator")


class _ClosedClient:
    """Stands in for the client of a closed orchestrator, so any later call says so."""

    def __getattr__(self, name: str) -> NoReturn:
        raise PluginError(
            PluginErrorCode.InvalidState,
            "this AdvancedPluginOrchestrator is closed; connect a new one",
        )


def _detach_at_exit(ref: weakref.ref[AdvancedPluginOrchestrator]) -> None:
    """Let an orchestrator left open at exit free its client (the runtime is released by
    :mod:`engine.hosting.lifetime` right after)."""
    orchestrator = ref()
    if orchestrator is not None:
        orchestrator._detach()


class AdvancedPluginOrchestrator:
    """Register, run and control graph workflows on Temporal.

    Build one with :meth:`connect` and close it when done (``await orch.close()``, or
    ``async with await AdvancedPluginOrchestrator.connect() as orch:``), or wrap an existing
    ``temporalio.client.Client`` (which stays the caller's to manage).

    Args:
        client: A connected client; it is given this engine's data converter.
        task_queue: Where executions run (workers must poll it).
        hooks_file: Where webhooks and their secrets are kept (default
            ``ORCHESTRATOR_HOOKS_FILE``, else ``hooks.json`` in the data directory; see
            :mod:`engine.client.hook_store`).
        query_timeout: How long to wait for a worker to answer a query of a registry entity
            (the definition read by :meth:`execute_workflow`). The default outlives
            Temporal's 10 s workflow task timeout: a worker that stops while it holds the
            entity's task leaves queries waiting until the task times out and another worker
            takes it. Status and events of executions never wait that long: without a
            prompt answer they are read from the run's history
            (:mod:`engine.temporal.history_state`).

    Raises:
        PluginError: ``InvalidConfiguration`` for a task queue or a blob store setting that
            is wrong (``ORCHESTRATOR_BLOB_STORE``, ``ORCHESTRATOR_BLOB_KEY``, see
            :mod:`engine.temporal.blobs`).
    """

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str | None = None,
        query_timeout: float = QUERY_TIMEOUT,
        hooks_file: Path | None = None,
    ) -> None:
        self.client = with_pydantic_converter(client)
        self.task_queue = task_queue or default_task_queue()
        if not self.task_queue or len(self.task_queue) > 200 or "'" in self.task_queue:
            raise PluginError(
                PluginErrorCode.InvalidConfiguration,
                f"task queue {self.task_queue[:100]!r} must be 1-200 characters without quotes",
            )
        self.query_timeout = timedelta(seconds=query_timeout)
        self.blobs = BlobStore.configured()
        self.hook_store = HookStore(hooks_file)
        self._recent_definitions: dict[str, tuple[bool, float]] = {}
        self._catalog_reads = StartCatalogReads(self.get_plugin_catalog)
        self._definitions = DefinitionReads(
            lambda: self.client,
            lambda workflow_id: definition_entity_id(workflow_id, self.task_queue),
            self._query_definition,
            self.query_timeout,
        )
        self._recent_executions: dict[str, float] = {}
        self._runtime_key: int | None = None  # set when connect() made the client
        self._exit_token = -1

    @classmethod
    async def connect(
        cls,
        target: str | None = None,
        namespace: str | None = None,
        task_queue: str | None = None,
        *,
        query_timeout: float = QUERY_TIMEOUT,
        tls: TLSConfig | bool | None = None,
        api_key: str | None = None,
        hooks_file: Path | None = None,
    ) -> AdvancedPluginOrchestrator:
        """Connect to Temporal (defaults: ``TEMPORAL_ADDRESS``/``TEMPORAL_NAMESPACE``, then
        ``localhost:7233``/``default``; TLS and API key from the environment, see
        :mod:`engine.hosting.connection`).

        The client runs on an SDK runtime of its own, which :meth:`close` shuts down (see
        :mod:`engine.hosting.lifetime`); one never closed is released at interpreter exit.
        """
        key, runtime = lifetime.new_runtime()
        try:
            client = await connect(target, namespace, tls=tls, api_key=api_key, runtime=runtime)
            orchestrator = cls(
                client, task_queue=task_queue, query_timeout=query_timeout, hooks_file=hooks_file
            )
        except BaseException:
            del runtime
            lifetime.release_runtime(key)
            raise
        orchestrator._runtime_key = key
        # Weakly: a program that drops the orchestrator unclosed must not keep it alive.
        orchestrator._exit_token = lifetime.close_at_exit(
            functools.partial(_detach_at_exit, weakref.ref(orchestrator))
        )
        return orchestrator

    async def close(self) -> None:
        """Stop using Temporal: later calls raise ``InvalidState``. An orchestrator made by
        :meth:`connect` also shuts its client's SDK runtime down, so no SDK thread outlives
        it; a client passed in is left to its owner. Closing twice is harmless."""
        key = self._detach()
        if key is not None:
            lifetime.release_runtime(key)

    def _detach(self) -> int | None:
        """Drop the client; return the key of the runtime this orchestrator owns, if any."""
        self.client = cast(Client, _ClosedClient())
        lifetime.cancel_close_at_exit(self._exit_token)
        key, self._runtime_key = self._runtime_key, None
        return key

    async def __aenter__(self) -> AdvancedPluginOrchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- workflow management -------------------------------------------------------------

    def _eager(self) -> bool:
        """Start eagerly: a worker of this process serves the queue (local_workers)."""
        return local_workers.serves(self.client, self.task_queue)

    async def register_workflow(self, workflow: PluginWorkflow) -> None:
        """Validate and store a definition as version 1.

        Raises:
            PluginError: a validation code, or ``WorkflowAlreadyExists``.
        """
        await self._check_definition(workflow)
        stored = workflow.model_copy(deep=True, update={"version": 1})
        try:
            with translate_errors(f"workflow '{workflow.workflow_id}'"):
                await self.client.start_workflow(
                    DEFINITION_WORKFLOW,
                    DefinitionState(workflow=stored),
                    id=definition_entity_id(workflow.workflow_id, self.task_queue),
                    task_queue=self.task_queue,
                    request_eager_start=self._eager(),
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    static_summary=f"definition of {workflow.workflow_id}",
                    search_attributes=entity_search_attributes(),
                )
        except WorkflowAlreadyStartedError:
            raise PluginError(
                PluginErrorCode.WorkflowAlreadyExists,
                f"workflow '{workflow.workflow_id}' is already registered",
            ) from None
        self._remember_definition(workflow.workflow_id, registered=True)

    async def unregister_workflow(self, workflow_id: str) -> None:
        """Remove a definition. Running executions keep their snapshot and finish.

        Raises:
            PluginError: ``WorkflowNotFound``; ``InvalidState`` while schedules run it
                (delete them first, see :mod:`engine.client.schedules`).
        """
        self._check_workflow_id(workflow_id)
        await schedules.refuse_if_scheduled(self, workflow_id)
        await self._update_definition(workflow_id, "unregister", None)
        self._remember_definition(workflow_id, registered=False)

    async def get_workflow(self, workflow_id: str) -> PluginWorkflow:
        """The current definition, with its ``version``.

        Raises:
            PluginError: ``WorkflowNotFound``.
        """
        self._check_workflow_id(workflow_id)
        return await self._definitions.read(workflow_id)

    async def _query_definition(self, workflow_id: str) -> PluginWorkflow:
        handle = self.client.get_workflow_handle(definition_entity_id(workflow_id, self.task_queue))
        try:
            return await executions.query_definition(handle, workflow_id, self.query_timeout)
        except PluginError as exc:
            # A worker without a workflow cache drops a query that reached it while it ran
            # another task of the entity (the SDK evicts the run with the query buffered):
            # ask once more when a worker does poll the queue.
            if exc.code is not PluginErrorCode.WorkerUnavailable or not await worker_is_polling(
                self.client, self.task_queue, include_embedded=True
            ):
                raise
            log.warning("a registry query went unanswered; asking again", workflow_id=workflow_id)
            return await executions.query_definition(handle, workflow_id, self.query_timeout)

    async def get_registered_workflows(self) -> list[str]:
        """Ids of all registered definitions, sorted."""
        query = (
            f"WorkflowType = '{DEFINITION_WORKFLOW}' AND ExecutionStatus = 'Running' "
            f"AND TaskQueue = '{self.task_queue}' AND {ENTITY_DIVISION_CLAUSE}"
        )
        ids = {workflow_id_of_entity(execution.id) async for execution in self._list(query)}
        now = time.monotonic()
        for workflow_id, (registered, at) in self._recent_definitions.items():
            if now - at < _OVERLAY_SECONDS:
                (ids.add if registered else ids.discard)(workflow_id)
        return sorted(ids)

    # -- dynamic modification --------------------------------------------------------------

    async def add_node_to_workflow(self, workflow_id: str, node: WorkflowNode) -> None:
        """Add a node to a registered definition (new version)."""
        await self._modify(workflow_id, DefinitionChange(kind="add_node", node=node))

    async def remove_node_from_workflow(self, workflow_id: str, node_id: str) -> None:
        """Remove a node and its connections from a registered definition (new version)."""
        await self._modify(workflow_id, DefinitionChange(kind="remove_node", node_id=node_id))

    async def add_connection_to_workflow(
        self, workflow_id: str, connection: WorkflowConnection
    ) -> None:
        """Add a connection to a registered definition (new version)."""
        await self._modify(
            workflow_id, DefinitionChange(kind="add_connection", connection=connection)
        )

    async def update_workflow(self, workflow: PluginWorkflow) -> PluginWorkflow:
        """Replace a registered definition wholesale (new version); returns it."""
        change = DefinitionChange(kind="replace", workflow=workflow)
        return await self._modify(workflow.workflow_id, change)

    # -- execution -----------------------------------------------------------------------

    async def execute_workflow(
        self,
        workflow_id: str,
        input_data: dict[str, Any] | None = None,
        *,
        execution_key: str | None = None,
    ) -> str:
        """Start an execution of the current version; return its execution id.

        Batch executions (Sequential, Parallel, Conditional) end when their graph is done;
        EventDriven executions run until cancelled; Streaming executions until their source
        is exhausted or they are cancelled.

        ``execution_key`` (1-64 letters, digits, ``_`` and ``-``) makes the start
        idempotent: the execution id is derived from it, and Temporal refuses a second
        execution of that id, running or ended (as long as the namespace retains it), which
        raises ``WorkflowAlreadyExists`` with ``details["execution_id"]``.

        Raises:
            PluginError: ``WorkflowNotFound``, ``InvalidWorkflowStructure`` (no nodes, or
                a long-running definition and input too large to carry across
                continue-as-new), ``InvalidInput``; ``WorkflowAlreadyExists`` for an
                ``execution_key`` already used.
        """
        if execution_key is not None and not _EXECUTION_KEY.fullmatch(execution_key):
            raise PluginError(
                PluginErrorCode.InvalidInput,
                f"execution_key {execution_key[:80]!r} must be 1-64 letters, digits, '_' or '-'",
            )
        request = await self._start_request(workflow_id, input_data)
        definition = request.params.workflow
        execution_id = execution_id_for(workflow_id, execution_key or uuid.uuid4().hex[:16])
        await reserve_slot(self.client, self.task_queue, definition, execution_id)
        with translate_errors(f"workflow '{workflow_id}'"), _keyed_start(execution_id):
            async with _give_back_on_error(self.client, self.task_queue, definition, execution_id):
                await self.client.start_workflow(
                    EXECUTION_WORKFLOW,
                    request.params,
                    id=execution_id,
                    task_queue=self.task_queue,
                    request_eager_start=self._eager(),
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    # A keyed id is never reused: a repeated start names the earlier one.
                    id_reuse_policy=(
                        WorkflowIDReusePolicy.REJECT_DUPLICATE
                        if execution_key
                        else WorkflowIDReusePolicy.ALLOW_DUPLICATE
                    ),
                    search_attributes=request.search_attributes,
                    memo=request.memo,
                    static_summary=request.static_summary,
                )
        self._recent_executions[execution_id] = time.monotonic()
        return execution_id

    async def send_event(
        self,
        execution_id: str,
        event_type: str,
        payload: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        source: str | None = None,
        timeout: float = 60.0,
    ) -> str:
        """Send an event to a running EventDriven execution; return its event id.

        The event enters as if ``source`` (a Source node; default: the first) had produced
        it, and runs one pass. Events are deduplicated by ``event_id``: give one to make a
        retried call safe (default: a new id). While the execution's queue is full, or it is
        continuing as new, the call waits (up to ``timeout`` seconds) instead of piling up.

        Raises:
            PluginError: ``ExecutionNotFound``; ``InvalidState`` if the execution is not a
                running EventDriven one; ``InvalidInput`` for a payload that is not a JSON
                object of at most 256 KiB, or a type, id or source out of bounds
                (:mod:`engine.runtime.bounds`), or an event the execution could never carry;
                ``Timeout`` if it stays busy.
        """
        _check_text("event_type", event_type, MAX_EVENT_TYPE_CHARS)
        _check_text("event_id", event_id or "", MAX_EVENT_ID_CHARS)
        _check_text("source", source or "", MAX_SOURCE_CHARS)
        event = IncomingEvent(
            event_id=event_id or uuid.uuid4().hex,
            event_type=event_type,
            payload=executions.json_object(payload, MAX_EVENT_BYTES),
            source=source or "",
        )
        await self.send_events(execution_id, [event], timeout=timeout)
        return event.event_id

    async def send_events(
        self, execution_id: str, events: list[IncomingEvent], *, timeout: float = 60.0
    ) -> None:
        """Send several events at once (one update per 100 events or 256 KiB), in order;
        see :meth:`send_event`."""
        for index, event in enumerate(events):
            if not isinstance(event, IncomingEvent):
                raise PluginError(
                    PluginErrorCode.InvalidInput,
                    f"events[{index}] is a {type(event).__name__}, not an IncomingEvent",
                )
            if problem := event_problem(event):
                raise PluginError(PluginErrorCode.InvalidInput, f"events[{index}]: {problem}")
        handle = self._execution(execution_id)
        description = await executions.describe(handle, execution_id)
        memo = await description.memo()
        mode = memo.get("execution_mode")
        if description.status is not TemporalStatus.RUNNING or mode not in (None, "event_driven"):
            state = executions.status_name(description.status)
            raise PluginError(
                PluginErrorCode.InvalidState,
                f"cannot send an event to execution '{execution_id}': it is "
                f"{mode or 'an execution'} and {state}; events go to running EventDriven "
                "executions",
            )
        for batch in _batches(events):
            signal = EventsSignal(events=batch)
            await executions.submit_events(handle, execution_id, signal, timeout)

    async def retry_execution(self, execution_id: str) -> str:
        """Run a failed (or cancelled) batch execution again from where it stopped: nodes
        that completed keep their results and do not run again; the failed node and what
        follows it run. The execution keeps its id (a new Temporal run of it).

        An execution that ran the compensations of its nodes
        (:mod:`engine.runtime.compensation`) is not retried: what its completed nodes did
        was undone.

        Raises:
            PluginError: ``ExecutionNotFound``; ``InvalidState`` unless it ended failed or
                cancelled, if its results were too large to keep, or if it ran
                compensations.
        """
        handle = self._execution(execution_id)
        description = await executions.describe(handle, execution_id)
        if description.status not in (TemporalStatus.FAILED, TemporalStatus.CANCELED):
            raise PluginError(
                PluginErrorCode.InvalidState,
                f"cannot retry execution '{execution_id}': it is "
                f"{executions.status_name(description.status)}; only failed or cancelled "
                "executions are retried",
            )
        outcome = await executions.outcome_of(handle, description)
        return await self._restart(execution_id, handle, outcome, {})

    async def skip_node(
        self, execution_id: str, node_id: str, output: dict[str, Any] | None = None
    ) -> None:
        """Complete a node with ``output`` instead of running it (or running it again).

        A running or paused batch execution completes the node with it (a running node is
        cancelled first). A failed or cancelled one is retried with the node completed with
        it (see :meth:`retry_execution`).

        Raises:
            PluginError: ``ExecutionNotFound``, ``NodeNotFound``; ``InvalidState`` if the
                node has already finished or the execution cannot take it; ``InvalidInput``
                for an output that is not a JSON object of at most 500,000 bytes.
        """
        _check_text("node_id", node_id, MAX_NAME_CHARS)
        data = executions.json_object(output, MAX_INPUT_BYTES)
        handle = self._execution(execution_id)
        description = await executions.describe(handle, execution_id)
        if description.status is TemporalStatus.RUNNING:
            await executions.update_execution(
                handle, execution_id, "skip_node", SkipNode(node_id=node_id, output=data)
            )
            return
        if description.status not in (TemporalStatus.FAILED, TemporalStatus.CANCELED):
            raise PluginError(
                PluginErrorCode.InvalidState,
                f"cannot skip node '{node_id}' of execution '{execution_id}': it is "
                f"{executions.status_name(description.status)}",
            )
        outcome = await executions.outcome_of(handle, description)
        if node_id not in outcome.context.node_states:
            raise PluginError(
                PluginErrorCode.NodeNotFound,
                f"execution '{execution_id}' has no node '{node_id}'",
            )
        await self._restart(execution_id, handle, outcome, {node_id: data})

    async def _restart(
        self,
        execution_id: str,
        handle: Any,
        outcome: ExecutionOutcome,
        given: dict[str, dict[str, Any]],
    ) -> str:
        if outcome.truncated:
            raise PluginError(
                PluginErrorCode.InvalidState,
                f"cannot retry execution '{execution_id}': its node results were too large "
                "to keep with it",
            )
        if refusal := retry_refusal(execution_id, outcome.context):
            raise PluginError(PluginErrorCode.InvalidState, refusal)
        params = await executions.start_input(handle)
        if params.workflow.execution_mode not in _BATCH_MODES:
            raise PluginError(
                PluginErrorCode.InvalidState,
                f"cannot retry execution '{execution_id}': only batch executions are retried "
                "(an EventDriven or Streaming one is started again with execute_workflow)",
            )
        completed = {
            node_id: state["result"]
            for node_id, state in outcome.context.node_states.items()
            if state.get("status") == "completed" and "result" in state
        }
        completed.update(given)
        context = outcome.context
        earlier = EarlierRecords(
            start_time=context.start_time.isoformat() if context.start_time else None,
            nodes={
                node_id: {key: state[key] for key in _KEPT_RECORD_FIELDS if key in state}
                for node_id, state in context.node_states.items()
            },
            skipped=list(given),
        )
        searchable = await search_attributes_enabled(self.client)
        retry = params.model_copy(
            update={
                "completed": completed,
                "earlier": earlier,
                "state": None,
                "batch_state": None,
                "search_attributes": searchable,
            }
        ).pack_definition()
        await reserve_slot(self.client, self.task_queue, params.workflow, execution_id)
        with translate_errors(f"execution '{execution_id}'"):
            async with _give_back_on_error(
                self.client, self.task_queue, params.workflow, execution_id
            ):
                await self.client.start_workflow(
                    EXECUTION_WORKFLOW,
                    retry,
                    id=execution_id,
                    task_queue=self.task_queue,
                    request_eager_start=self._eager(),
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    search_attributes=(
                        start_search_attributes(params.workflow.workflow_id) if searchable else None
                    ),
                    memo={
                        "workflow_id": params.workflow.workflow_id,
                        "workflow_version": params.workflow.version,
                        "execution_mode": params.workflow.execution_mode.value,
                        "retry_of_completed_nodes": sorted(completed),
                    },
                    static_summary=(
                        f"retry of {params.workflow.name or params.workflow.workflow_id} "
                        f"(v{params.workflow.version}): {len(completed)} nodes kept"
                    ),
                )
        return execution_id

    async def approve_node(
        self,
        execution_id: str,
        node_id: str,
        approved: bool = True,
        *,
        by: str = "",
        comment: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        """Decide for a node waiting in ``approval`` (``node#pass`` in an EventDriven run
        where several passes wait at the same node).

        Raises:
            PluginError: ``ExecutionNotFound``; ``InvalidState`` if the node is not waiting
                (or the execution has ended); ``InvalidInput`` for ``by``, ``comment`` or
                ``data`` out of bounds (:mod:`engine.runtime.bounds`).
        """
        _check_text("node_id", node_id, MAX_NAME_CHARS)
        if not isinstance(approved, bool):
            raise PluginError(
                PluginErrorCode.InvalidInput,
                f"approved must be True or False, not {type(approved).__name__}",
            )
        _check_text("by", by, MAX_NAME_CHARS)
        _check_text("comment", comment, MAX_COMMENT_CHARS)
        decision = ApprovalDecision(
            node_id=node_id,
            approved=approved,
            by=by,
            comment=comment,
            data=executions.json_object(data, MAX_EVENT_BYTES),
        )
        await executions.update_execution(
            self._execution(execution_id), execution_id, "decide", decision
        )

    async def cancel_execution(self, execution_id: str) -> None:
        """Request cancellation: running nodes are cancelled, the run ends ``Cancelled``.

        Raises:
            PluginError: ``ExecutionNotFound``; ``InvalidState`` if it already ended.
        """
        handle = self._execution(execution_id)
        description = await executions.describe(handle, execution_id)
        if description.status is not TemporalStatus.RUNNING:
            raise PluginError(
                PluginErrorCode.InvalidState,
                f"cannot cancel execution '{execution_id}': it has already ended "
                f"({executions.status_name(description.status)})",
            )
        with translate_errors(f"execution '{execution_id}'"):
            await handle.cancel()

    async def pause_execution(self, execution_id: str) -> None:
        """Start no new node until resumed; running nodes finish.

        Raises:
            PluginError: ``ExecutionNotFound``; ``InvalidState`` unless running.
        """
        await executions.update_execution(self._execution(execution_id), execution_id, "pause")

    async def resume_execution(self, execution_id: str) -> None:
        """Continue a paused execution.

        Raises:
            PluginError: ``ExecutionNotFound``; ``InvalidState`` unless paused.
        """
        await executions.update_execution(self._execution(execution_id), execution_id, "resume")

    # -- webhooks ------------------------------------------------------------------------

    async def create_hook(
        self,
        hook_id: str,
        workflow_id: str,
        action: Literal["start", "event"] = "start",
        execution_id: str | None = None,
        *,
        event_type: str | None = None,
        source: str | None = None,
        idempotency_field: str | None = None,
        max_body_bytes: int | None = None,
        rate_per_minute: int | None = None,
        tolerance_seconds: int | None = None,
    ) -> str:
        """Create a webhook, served at ``POST /hooks/<hook_id>`` by the studio and
        ``orchestrator serve``; return its secret, which is shown this once (see
        :mod:`engine.client.hook_signing` for how senders sign with it).

        A ``start`` hook starts an execution of ``workflow_id`` with the request body as
        ``input_data``; an ``event`` hook sends the body as the payload of an event of
        ``event_type`` (default ``webhook``; from the Source node ``source``, default the
        first) to the running EventDriven execution ``execution_id`` of ``workflow_id``.
        ``idempotency_field`` names a top-level body field whose value is the delivery's
        idempotency key when no ``Idempotency-Key`` header is sent. Bounds: the body
        (``max_body_bytes``, default and at most 256 KiB for events, at most 500,000 for
        starts), the rate (``rate_per_minute``, default 60) and how far the signature's
        timestamp may be from the clock (``tolerance_seconds``, default 300).

        The hook and its secret are kept in :attr:`hook_store` (a local file, never Temporal).

        Raises:
            PluginError: ``InvalidInput`` for a bad id, option or target; ``WorkflowNotFound``;
                ``ExecutionNotFound``; ``InvalidState`` for an event target that has ended;
                ``WorkflowAlreadyExists`` when the hook id is taken.
        """
        options = {
            "event_type": event_type,
            "source": source,
            "idempotency_field": idempotency_field,
            "max_body_bytes": max_body_bytes,
            "rate_per_minute": rate_per_minute,
            "tolerance_seconds": tolerance_seconds,
        }
        return await hooks.create_hook(self, hook_id, workflow_id, action, execution_id, options)

    async def list_hooks(self) -> list[HookInfo]:
        """The webhooks of this namespace and task queue, by id, without their secrets."""
        return await asyncio.to_thread(self.hook_store.list, self.client.namespace, self.task_queue)

    async def delete_hook(self, hook_id: str) -> None:
        """Delete a webhook: its URL answers 404 from then on.

        Raises:
            PluginError: ``WorkflowNotFound`` naming the hook.
        """
        await asyncio.to_thread(
            self.hook_store.delete, hook_id, self.client.namespace, self.task_queue
        )

    async def rotate_hook_secret(self, hook_id: str, grace_seconds: float = 0) -> str:
        """Give a webhook a new secret and return it (shown this once); the old one is
        still accepted for ``grace_seconds`` (at most 7 days; 0: refused at once).

        Raises:
            PluginError: ``WorkflowNotFound`` naming the hook; ``InvalidInput``.
        """
        return await asyncio.to_thread(
            self.hook_store.rotate, hook_id, self.client.namespace, self.task_queue, grace_seconds
        )

    # -- schedules -------------------------------------------------------------------------

    async def create_schedule(
        self,
        workflow_id: str,
        *,
        cron: str | None = None,
        interval: float | timedelta | None = None,
        input_data: dict[str, Any] | None = None,
        overlap: OverlapName = "skip",
        catchup_window: float | timedelta | None = None,
        jitter: float | timedelta | None = None,
        time_zone: str | None = None,
        schedule_id: str | None = None,
        paused: bool = False,
        note: str | None = None,
    ) -> str:
        """Run a definition on a schedule (a Temporal Schedule); return the schedule's id.

        Each run is an ordinary execution, started as :meth:`execute_workflow` starts one,
        with the definition current when it starts (see :mod:`engine.client.schedules`: a
        change to the definition re-binds its schedules; it cannot be unregistered while
        schedules run it).

        Args:
            workflow_id: The registered definition to run.
            cron: A cron expression (5 fields, or 6-7 with seconds and year, or ``@daily``,
                ``@every 90s`` ...). Exactly one of ``cron`` and ``interval``.
            interval: Seconds (or a timedelta) between runs, at least 1 s.
            input_data: The ``input_data`` of every run.
            overlap: What happens when a run is due while the last one still runs:
                ``skip`` (default), ``buffer_one``, ``buffer_all``, ``cancel_other``,
                ``terminate_other``, ``allow_all`` (Temporal's overlap policies).
            catchup_window: How late (seconds, at least 10) a run missed while Temporal was
                unavailable may still start (Temporal's default: one year).
            jitter: Start each run up to this many seconds late, at random.
            time_zone: IANA name the cron expression is read in (default UTC).
            schedule_id: The schedule's id (default ``<workflow_id>-<8 hex>``).
            paused: Create it paused (``note`` says why).

        Raises:
            PluginError: ``WorkflowNotFound``; ``InvalidInput`` naming a bad cron, time
                zone, interval, window, jitter, overlap or input; ``ScheduleAlreadyExists``.
        """
        return await schedules.create_schedule(
            self,
            workflow_id,
            cron=cron,
            interval=interval,
            input_data=input_data,
            overlap=overlap,
            catchup_window=catchup_window,
            jitter=jitter,
            time_zone=time_zone,
            schedule_id=schedule_id,
            paused=paused,
            note=note,
        )

    async def list_schedules(self, workflow_id: str | None = None) -> list[ScheduleSummary]:
        """This task queue's schedules (only those of ``workflow_id`` if given), by id.
        Read from Temporal's visibility store, which can lag a moment behind."""
        return await schedules.list_schedules(self, workflow_id)

    async def describe_schedule(self, schedule_id: str) -> ScheduleDetails:
        """A schedule: its definition, spec, overlap policy, whether paused, its next run
        times and its recent runs with their execution ids.

        Raises:
            PluginError: ``ScheduleNotFound`` (also for a schedule that is not this
                engine's on this task queue).
        """
        return await schedules.describe_schedule(self, schedule_id)

    async def pause_schedule(self, schedule_id: str, note: str | None = None) -> None:
        """Start no run until resumed; runs already started go on."""
        await schedules.pause_schedule(self, schedule_id, note)

    async def resume_schedule(self, schedule_id: str, note: str | None = None) -> None:
        """Resume a paused schedule from its next scheduled time."""
        await schedules.resume_schedule(self, schedule_id, note)

    async def trigger_schedule(self, schedule_id: str, overlap: OverlapName | None = None) -> None:
        """Start a run now (also while paused), under the schedule's overlap policy or
        ``overlap``; the run shows in :meth:`describe_schedule`'s recent runs."""
        await schedules.trigger_schedule(self, schedule_id, overlap)

    async def backfill_schedule(
        self,
        schedule_id: str,
        start: datetime,
        end: datetime,
        overlap: OverlapName | None = None,
    ) -> None:
        """Take the runs the schedule would have started between ``start`` and ``end``
        (naive datetimes are UTC), under its overlap policy or ``overlap``.

        Raises:
            PluginError: ``InvalidInput`` for an empty or reversed range, one over 366 days,
                or more than 1,000 runs of an interval schedule; ``ScheduleNotFound``.
        """
        await schedules.backfill_schedule(self, schedule_id, start, end, overlap)

    async def delete_schedule(self, schedule_id: str) -> None:
        """Remove a schedule; the runs it started go on."""
        await schedules.delete_schedule(self, schedule_id)

    # -- monitoring ----------------------------------------------------------------------

    async def get_execution_status(self, execution_id: str) -> WorkflowExecutionContext:
        """The execution's context; works while running, paused and after it ended, with or
        without a worker: when no worker answers, a running execution's state is replayed
        from its Temporal history and ``execution_data["observed"]`` says so and as of when.

        Raises:
            PluginError: ``ExecutionNotFound``.
        """
        return await executions.context_of(
            self._execution(execution_id), execution_id, self.query_timeout
        )

    async def list_executions(
        self,
        workflow_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ExecutionSummary]:
        """Executions of this task queue, active and ended, newest first (one row per
        execution id, however often it was retried or continued as new).

        Args:
            workflow_id: Only executions of this definition.
            status: Only executions in this status (``running``, ``paused``, ``pending``,
                ``queued`` (waiting for a slot of ``max_concurrent_executions``),
                ``completed``, ``failed``, ``cancelled``, ``terminated``).
            limit: At most this many rows.
            offset: Skip this many of the newest first (a page is ``offset=page*limit``).

        Raises:
            PluginError: ``InvalidInput`` for a filter that is not a workflow id or a status.
        """
        return await list_executions(self, workflow_id, status, limit, offset)

    async def get_execution_definition(self, execution_id: str) -> PluginWorkflow:
        """The definition the execution runs: the snapshot its latest run started with (a
        long-running execution that adopted a newer version shows it after its next
        continue-as-new). Read from Temporal's history, so it needs no worker and survives
        ``unregister_workflow``.

        Raises:
            PluginError: ``ExecutionNotFound``.
        """
        params = await executions.start_input(self._execution(execution_id))
        return params.workflow

    async def get_node_status(self, execution_id: str, node_id: str) -> dict[str, Any]:
        """One node's state: ``status``, ``attempts``, ``started_at``, ``completed_at`` and
        ``result`` or ``error``. For a running node, the current attempt and last failure
        come from Temporal's pending-activity view.

        Raises:
            PluginError: ``ExecutionNotFound``, ``NodeNotFound``.
        """
        context = await self.get_execution_status(execution_id)
        state = context.node_states.get(node_id)
        if state is None:
            raise PluginError(
                PluginErrorCode.NodeNotFound,
                f"execution '{execution_id}' has no node '{node_id}'",
            )
        if state.get("status") == "running":
            state = await executions.with_pending_attempt(
                self._execution(execution_id), node_id, state
            )
        return state

    async def get_active_executions(self) -> list[str]:
        """Ids of executions that have not ended (running or paused), newest first."""
        query = (
            f"WorkflowType = '{EXECUTION_WORKFLOW}' AND ExecutionStatus = 'Running' "
            f"AND TaskQueue = '{self.task_queue}'"
        )
        active = [execution.id async for execution in self._list(query)]
        # Visibility lags a moment behind; what this process started recently is checked
        # directly, so it reads its own writes.
        now = time.monotonic()
        for execution_id, at in list(self._recent_executions.items()):
            if now - at >= _OVERLAY_SECONDS:
                del self._recent_executions[execution_id]
                continue
            description = await executions.describe(self._execution(execution_id), execution_id)
            running = description.status is TemporalStatus.RUNNING
            if running and execution_id not in active:
                active.insert(0, execution_id)
            elif not running and execution_id in active:
                active.remove(execution_id)
        return active

    async def wait_for_completion(
        self, execution_id: str, timeout: float | None = None
    ) -> WorkflowExecutionContext:
        """Wait until the execution ends and return its final context (also when it failed
        or was cancelled).

        Raises:
            PluginError: ``ExecutionNotFound``; ``Timeout`` after ``timeout`` seconds.
        """
        handle = self._execution(execution_id)
        try:
            outcome = await asyncio.wait_for(executions.wait_closed(handle, execution_id), timeout)
        except TimeoutError:
            raise PluginError(
                PluginErrorCode.Timeout,
                f"execution '{execution_id}' did not finish within {timeout:g}s",
            ) from None
        if outcome is not None:
            return outcome.context
        return await executions.context_of(handle, execution_id, self.query_timeout)

    async def read_blob(self, ref: dict[str, Any]) -> Any:
        """The value a blob reference in a result stands for (see :mod:`engine.temporal.blobs`).

        Only references the engine made are read (their signature verifies with this
        process's ``ORCHESTRATOR_BLOB_KEY``, or the local store's key).

        Raises:
            PluginError: ``InvalidInput`` for something that is not such a reference (the
                message says why: malformed, unsigned, signed with another key);
                ``InvalidState`` if the store does not hold the blob as it was made (a
                symlink out of the store, changed content); ``ExecutionNotFound`` if the
                blob is gone (collected, or in another machine's store).
        """
        try:
            return await asyncio.to_thread(self.blobs.get, ref)
        except BlobReferenceError as exc:
            raise PluginError(PluginErrorCode.InvalidInput, str(exc)) from None
        except BlobIntegrityError as exc:
            raise PluginError(PluginErrorCode.InvalidState, str(exc)) from None
        except FileNotFoundError:
            raise PluginError(
                PluginErrorCode.ExecutionNotFound,
                f"blob {ref['$blob']} of execution '{ref.get('execution_id', '')}' is not in "
                f"the blob store at {self.blobs.location}",
            ) from None

    async def collect_blobs(self, older_than: float = 7 * 24 * 3600.0) -> list[str]:
        """Remove the blobs of executions that ended, and whose blobs were last written more
        than ``older_than`` seconds ago; return those executions' ids."""
        removed = []
        cutoff = time.time() - older_than
        for execution_id, directory, modified in await asyncio.to_thread(self.blobs.executions):
            if modified > cutoff:
                continue
            try:
                description = await executions.describe(self._execution(execution_id), execution_id)
                ended = description.status is not TemporalStatus.RUNNING
            except PluginError as exc:
                ended = exc.code is PluginErrorCode.ExecutionNotFound  # gone from Temporal
            if ended:
                await asyncio.to_thread(self.blobs.remove, directory)
                removed.append(execution_id)
        return removed

    def events(self, execution_id: str, *, after: int = 0) -> AsyncGenerator[WorkflowEvent, None]:
        """The execution's events in order, from sequence ``after + 1``, ending after the
        terminal event. Works from any process, for running and ended executions."""
        return executions.follow_events(
            self.client, self._execution(execution_id), execution_id, after, self.query_timeout
        )

    # -- internals -----------------------------------------------------------------------

    async def _start_request(
        self, workflow_id: str, input_data: dict[str, Any] | None
    ) -> StartRequest:
        """What starting an execution of the current version sends (the start argument,
        search attributes, memo, summary): :meth:`execute_workflow` and schedules
        (:mod:`engine.client.schedules`) send the same."""
        if input_data is not None and not isinstance(input_data, dict):
            raise PluginError(
                PluginErrorCode.InvalidInput,
                f"input_data must be a JSON object, got {type(input_data).__name__}",
            )
        async with self._catalog_reads.for_start(workflow_id) as catalog:
            definition = await self.get_workflow(workflow_id)
            if not definition.nodes:
                raise PluginError(
                    PluginErrorCode.InvalidWorkflowStructure,
                    f"workflow '{workflow_id}' has no nodes to run",
                )
            searchable = await search_attributes_enabled(self.client)
            subworkflows = await self._subworkflows(definition)
            definitions = [definition, *subworkflows.values()]
            auto = uses_auto(definitions)
            catalog.needed(auto)
            params = ExecutionInput(
                workflow=definition,
                input_data=executions.json_object(input_data, MAX_INPUT_BYTES),
                subworkflows=subworkflows,
                search_attributes=searchable,
                light_plugins=light_plugins(await catalog.read()) if auto else [],
            )
        if definition.execution_mode not in _BATCH_MODES and (problem := long_run_problem(params)):
            raise PluginError(
                PluginErrorCode.InvalidWorkflowStructure, f"workflow '{workflow_id}': {problem}"
            )
        return StartRequest(
            params=params.pack_definition(),  # the start event's bulk: written compressed
            search_attributes=start_search_attributes(workflow_id) if searchable else None,
            memo={
                "workflow_id": workflow_id,
                "workflow_version": definition.version,
                "execution_mode": definition.execution_mode.value,
            },
            static_summary=(
                f"{definition.name or workflow_id} (v{definition.version}, "
                f"{definition.execution_mode.name}, {len(definition.nodes)} nodes)"
            ),
        )

    def _execution(self, execution_id: str) -> WorkflowHandle[Any, Any]:
        if (
            not isinstance(execution_id, str)
            or not execution_id
            or len(execution_id) > MAX_TEMPORAL_ID_LENGTH
        ):
            raise PluginError(
                PluginErrorCode.ExecutionNotFound,
                f"no execution {str(execution_id)[:100]!r}: not a valid execution id",
            )
        return self.client.get_workflow_handle(execution_id)

    def _check_workflow_id(self, workflow_id: str) -> None:
        if reason := check_id("workflow_id", workflow_id):
            raise PluginError(
                PluginErrorCode.WorkflowNotFound, f"no workflow {workflow_id!r}: {reason}"
            )

    async def _subworkflows(self, definition: PluginWorkflow) -> dict[str, PluginWorkflow]:
        """The current definitions of every workflow the definition's ``subworkflow`` nodes
        run, transitively (snapshots, like the definition itself).

        Raises:
            PluginError: ``WorkflowNotFound``; ``CircularDependency`` when workflows run each
                other; ``ExecutionModeNotSupported`` for a long-running child.
        """
        found: dict[str, PluginWorkflow] = {}

        async def visit(parent: PluginWorkflow, path: list[str]) -> None:
            for node in parent.nodes:
                if node.plugin_id != SUBWORKFLOW:
                    continue
                child_id = str(node.configuration.get("workflow_id", ""))
                if child_id in path:
                    raise PluginError(
                        PluginErrorCode.CircularDependency,
                        f"workflows run each other: {' -> '.join([*path, child_id])}",
                    )
                if child_id in found:
                    continue
                child = await self.get_workflow(child_id)
                if child.execution_mode not in _BATCH_MODES:
                    raise PluginError(
                        PluginErrorCode.ExecutionModeNotSupported,
                        f"node '{node.node_id}' of workflow '{parent.workflow_id}' runs "
                        f"'{child_id}', which is {child.execution_mode.name}: a subworkflow "
                        "must end, so it runs in a batch mode",
                    )
                found[child_id] = child
                await visit(child, [*path, child_id])

        await visit(definition, [definition.workflow_id])
        return found

    async def get_plugin_catalog(self) -> list[PluginInfo]:
        """What the workers of this task queue can run (empty until one has started)."""
        handle = self.client.get_workflow_handle(catalog_entity_id(self.task_queue))
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return []
            raise translate_rpc(exc, f"task queue '{self.task_queue}'") from None
        catalog: list[PluginInfo] = await description.memo_value(
            CATALOG_MEMO_KEY, [], type_hint=list[PluginInfo]
        )
        return catalog

    async def _check_definition(self, workflow: PluginWorkflow) -> None:
        """Structure, and every node against the catalog: every problem at once."""
        catalog = await self.get_plugin_catalog()
        validate_with_catalog(workflow, {info.plugin_id: info for info in catalog})

    async def _modify(self, workflow_id: str, change: DefinitionChange) -> PluginWorkflow:
        # Check the changed definition against the catalog before asking the registry,
        # which checks structure again (it cannot see the catalog).
        await self._check_definition(apply_change(await self.get_workflow(workflow_id), change))
        result = await self._update_definition(workflow_id, "modify", change)
        assert isinstance(result, PluginWorkflow)
        # Scheduled runs use the definition current when they start.
        await schedules.rebind(self, workflow_id)
        return result

    async def _update_definition(
        self, workflow_id: str, update: str, arg: DefinitionChange | None
    ) -> PluginWorkflow | None:
        self._check_workflow_id(workflow_id)
        handle = self.client.get_workflow_handle(definition_entity_id(workflow_id, self.task_queue))
        try:
            return await executions.update_definition(handle, workflow_id, update, arg)
        finally:
            # A read that began before the change may answer with the version before it:
            # reads from now on start their own.
            self._definitions.forget(workflow_id)

    async def _list(self, query: str) -> AsyncIterator[Any]:
        with translate_errors("listing"):
            async for execution in self.client.list_workflows(query):
                yield execution

    def _remember_definition(self, workflow_id: str, *, registered: bool) -> None:
        self._recent_definitions[workflow_id] = (registered, time.monotonic())
        self._definitions.forget(workflow_id)


@contextlib.contextmanager
def _keyed_start(execution_id: str) -> Iterator[None]:
    """A start refused because the id is taken (only a keyed id can be) as
    ``WorkflowAlreadyExists`` naming the execution."""
    try:
        yield
    except WorkflowAlreadyStartedError:
        raise PluginError(
            PluginErrorCode.WorkflowAlreadyExists,
            f"execution '{execution_id}' was already started with this execution_key",
            {"execution_id": execution_id},
        ) from None


@contextlib.asynccontextmanager
async def _give_back_on_error(
    client: Client, task_queue: str, definition: PluginWorkflow, execution_id: str
) -> AsyncIterator[None]:
    """A start that fails frees the slot reserved for it (see :func:`reserve_slot`); not
    when the id is a running execution's (a keyed start repeated): the entry is that one's."""
    try:
        yield
    except WorkflowAlreadyStartedError:
        if "max_concurrent_executions" in definition.global_configuration:
            description = await client.get_workflow_handle(execution_id).describe()
            if description.status is not TemporalStatus.RUNNING:
                await give_back(client, task_queue, definition.workflow_id, execution_id)
        raise
    except BaseException:
        if "max_concurrent_executions" in definition.global_configuration:
            await give_back(client, task_queue, definition.workflow_id, execution_id)
        raise


def _check_text(field: str, value: object, limit: int) -> None:
    """Refuse a string argument out of bounds with ``InvalidInput``."""
    if problem := text_problem(field, value, limit):
        raise PluginError(PluginErrorCode.InvalidInput, problem)


def _batches(events: list[IncomingEvent]) -> list[list[IncomingEvent]]:
    """Events in order, in batches of at most 100 events and about ``MAX_EVENT_BYTES`` (an
    event of the largest payload goes alone), so each update stays one moderate payload."""
    batches: list[list[IncomingEvent]] = []
    size = 0
    for event in events:
        event_size = json_bytes(event)
        if not batches or len(batches[-1]) >= 100 or size + event_size > MAX_EVENT_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(event)
        size += event_size
    return batches
