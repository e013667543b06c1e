"""The durable registry: one small Temporal entity workflow per registered definition.

Why an entity workflow per definition (id ``<workflow_id>/definition``):

* it is durable and shared by every process on the namespace, with nothing but Temporal;
* registration is a workflow start with id-conflict policy FAIL, so two processes racing to
  register the same id cannot both win (``WorkflowAlreadyExists``);
* modifications are updates whose validator runs the full validation on the changed copy, so
  an invalid change is rejected before anything is written, and accepted changes are
  serialised by the workflow (no lost updates) and bump ``version``;
* reads are queries against the entity (read-after-write holds for everyone, not only for the
  writer); listing uses Temporal's visibility store (``WorkflowType`` and status), which
  may lag a moment, so the client overlays its own recent writes;
* unregistering completes the entity; registering the id again starts a new one;
* one definition per entity keeps every payload small, where a single registry workflow would
  carry every definition through each continue-as-new.

The entity continues-as-new when Temporal suggests it, so its history stays short however
often the definition changes.

Running EventDriven and Streaming executions subscribe to their entity; each accepted change
is signalled to them as a notice naming the new version (they read it from the entity, check
it and adopt it at their next event or batch). A subscriber that asks with an older version
than the current one is notified at once, so a change between an execution's start and its
subscription is not missed. Batch executions never subscribe: they keep the version they
started with. Subscriptions are bounded (:data:`MAX_SUBSCRIBERS`, execution ids of this
definition only), so signals from anyone who can reach Temporal cannot grow the entity's
state past what continue-as-new carries.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.base.errors import PluginError, PluginErrorCode
    from engine.language.models import PluginWorkflow
    from engine.language.modification import DefinitionChange, apply_change
    from engine.runtime import catalog_bounds
    from engine.runtime.contracts import (
        CATALOG_MEMO_KEY,
        CATALOG_WORKERS_MEMO_KEY,
        CATALOG_WORKFLOW,
        DEFINITION_CHANGED_SIGNAL,
        DEFINITION_WORKFLOW,
        MAX_INPUT_BYTES,
        PUBLISH_SIGNAL,
        SUBSCRIBE_SIGNAL,
        UNSUBSCRIBE_SIGNAL,
        WITHDRAW_SIGNAL,
        CatalogEntry,
        CatalogState,
        DefinitionNotice,
        DefinitionState,
        PluginInfo,
        Subscription,
        merge,
    )
    from engine.temporal.telemetry import ENTITY_DIVISION, NAMESPACE_DIVISION

ENTITY_DIVISION_PATCH = "entity-namespace-division"

# Histories recorded before it sent the whole definition to subscribers; now a notice.
DEFINITION_NOTICE_PATCH = "definition-notice"
# Histories recorded before it took every subscription; now only executions of this
# definition, up to MAX_SUBSCRIBERS.
BOUNDED_SUBSCRIPTIONS_PATCH = "bounded-subscriptions"
# Running long-running executions of one definition that get notices: each id takes at
# most about 150 bytes (``<workflow_id>/run-<16 hex>``), so the entity's state stays within
# MAX_INPUT_BYTES next to the definition.
MAX_SUBSCRIBERS = MAX_INPUT_BYTES // 500
# The entity keeps the current version in its memo (new runs and changes; histories recorded
# before it have no marker and upsert nothing): a client that holds a copy of the
# definition checks with a ``describe``, which needs no worker, that its copy is current
# instead of asking the entity with a query (engine.client.definition_reads).
VERSION_MEMO_PATCH = "definition-version-memo"
# A catalog entry over engine.runtime.catalog_bounds is refused, and the oldest entries give way
# beyond its bounds; asked only when an entry meets one (recorded runs never did).
CATALOG_BOUNDS_PATCH = "catalog-bounds"
# The catalog entity upserts its memo once per workflow task, after the signals it brought,
# not once per signal (runs recorded before upserted per signal).
CATALOG_COALESCE_PATCH = "catalog-memo-once-per-task"
VERSION_MEMO_KEY = "version"


@workflow.defn(name=DEFINITION_WORKFLOW)
class PluginWorkflowDefinition:
    """Holds the current version of one registered definition."""

    @workflow.init
    def __init__(self, state: DefinitionState) -> None:
        self._state = state
        self._unregistered = False

    @workflow.run
    async def run(self, state: DefinitionState) -> None:
        _hide_from_default_lists()
        self._publish_version()
        await workflow.wait_condition(
            lambda: self._unregistered or workflow.info().is_continue_as_new_suggested()
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self._unregistered:
            workflow.continue_as_new(self._state)

    @workflow.query
    def definition(self) -> PluginWorkflow:
        """The current definition, with its version."""
        return self._state.workflow

    @workflow.update
    async def modify(self, change: DefinitionChange) -> PluginWorkflow:
        """Apply a validated change, tell running subscribers, return the new definition."""
        # The validator applied every rule. The handler also runs on replay, where it must
        # accept what an earlier release accepted: only the rules that never tighten.
        self._state = DefinitionState(
            workflow=apply_change(self._state.workflow, change, strict=False),
            subscribers=self._state.subscribers,
        )
        self._publish_version()
        await self._notify(list(self._state.subscribers))
        return self._state.workflow

    def _publish_version(self) -> None:
        """Show the current version in the memo (VERSION_MEMO_PATCH)."""
        if workflow.patched(VERSION_MEMO_PATCH):
            workflow.upsert_memo({VERSION_MEMO_KEY: self._state.workflow.version})

    @workflow.signal(name=SUBSCRIBE_SIGNAL)
    async def subscribe(self, subscription: Subscription) -> None:
        """A long-running execution wants new versions from now on."""
        problem = self._subscription_problem(subscription)
        if problem and workflow.patched(BOUNDED_SUBSCRIPTIONS_PATCH):
            workflow.logger.warning("ignored a subscription: %s", problem)
            return
        if subscription.execution_id not in self._state.subscribers:
            self._state.subscribers.append(subscription.execution_id)
        if subscription.version < self._state.workflow.version:
            await self._notify([subscription.execution_id])

    @workflow.signal(name=UNSUBSCRIBE_SIGNAL)
    def unsubscribe(self, subscription: Subscription) -> None:
        """An execution ended."""
        if subscription.execution_id in self._state.subscribers:
            self._state.subscribers.remove(subscription.execution_id)

    def _subscription_problem(self, subscription: Subscription) -> str | None:
        prefix = f"{self._state.workflow.workflow_id}/run-"
        execution_id = subscription.execution_id
        if not execution_id.startswith(prefix) or len(execution_id) > len(prefix) + 32:
            return f"{execution_id[:200]!r} is not an execution of this definition"
        if (
            execution_id not in self._state.subscribers
            and len(self._state.subscribers) >= MAX_SUBSCRIBERS
        ):
            return f"{MAX_SUBSCRIBERS} executions are subscribed already"
        return None

    async def _notify(self, execution_ids: list[str]) -> None:
        if not execution_ids:
            return
        definition = self._state.workflow
        # Executions read the definition from this entity themselves: a notice is enough,
        # and they trust no signal's definition (anyone can send one).
        message: PluginWorkflow | DefinitionNotice = definition
        if workflow.patched(DEFINITION_NOTICE_PATCH):
            message = DefinitionNotice(
                workflow_id=definition.workflow_id, version=definition.version
            )
        results = await asyncio.gather(
            *(
                workflow.get_external_workflow_handle(execution_id).signal(
                    DEFINITION_CHANGED_SIGNAL, message
                )
                for execution_id in execution_ids
            ),
            return_exceptions=True,
        )
        for execution_id, result in zip(execution_ids, results, strict=True):
            if isinstance(result, BaseException) and execution_id in self._state.subscribers:
                self._state.subscribers.remove(execution_id)  # it ended meanwhile

    @modify.validator
    def _validate_modify(self, change: DefinitionChange) -> None:
        self._check_registered()
        try:
            apply_change(self._state.workflow, change)
        except PluginError as exc:
            raise ApplicationError(
                exc.message, exc.details, type=exc.code.value, non_retryable=True
            ) from None

    @workflow.update
    def unregister(self) -> None:
        """Remove the definition; the entity completes."""
        self._unregistered = True

    @unregister.validator
    def _validate_unregister(self) -> None:
        self._check_registered()

    def _check_registered(self) -> None:
        if self._unregistered:
            raise ApplicationError(
                f"workflow '{self._state.workflow.workflow_id}' is not registered",
                type=PluginErrorCode.WorkflowNotFound.value,
                non_retryable=True,
            )


@workflow.defn(name=CATALOG_WORKFLOW)
class PluginCatalog:
    """The plugins the workers of one task queue offer, kept in the memo for any client.

    Each worker publishes its entry when it starts (signal-with-start) and withdraws it when
    it stops gracefully; an entry replaces the same worker's earlier one.
    """

    @workflow.init
    def __init__(self, state: CatalogState) -> None:
        self._state = state
        self._changed = False  # the memo is behind the state (CATALOG_COALESCE_PATCH)

    @workflow.run
    async def run(self, state: CatalogState) -> None:
        _hide_from_default_lists()
        self._publish_memo()
        while True:
            await workflow.wait_condition(
                lambda: self._changed or workflow.info().is_continue_as_new_suggested()
            )
            if self._changed:
                self._changed = False
                self._publish_memo()
            if workflow.info().is_continue_as_new_suggested():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._state)

    @workflow.signal(name=PUBLISH_SIGNAL)
    def publish(self, entry: CatalogEntry) -> None:
        """A worker's plugins (replacing what it published before), within the bounds of
        :mod:`engine.runtime.catalog_bounds`: anyone who can reach Temporal can send this."""
        entries = self._state.entries
        replaced = [e for e in entries if e.identity != entry.identity] + [entry]
        problem = catalog_bounds.entry_problem(entry)
        bounded = replaced if problem else catalog_bounds.with_entry(entries, entry)
        # Runs recorded before the bounds never met them; only a run that meets one asks.
        if (problem or bounded != replaced) and workflow.patched(CATALOG_BOUNDS_PATCH):
            if problem:
                workflow.logger.warning("catalog entry refused: %s", problem)
                return
            workflow.logger.warning(
                "catalog entries dropped, oldest first: %d workers or %d bytes at most",
                catalog_bounds.MAX_CATALOG_WORKERS,
                catalog_bounds.MAX_CATALOG_BYTES,
            )
            replaced = bounded
        self._state.entries = replaced
        self._memo_changed()

    @workflow.signal(name=WITHDRAW_SIGNAL)
    def withdraw(self, identity: str) -> None:
        """A worker stopped."""
        self._state.entries = [e for e in self._state.entries if e.identity != identity]
        self._memo_changed()

    @workflow.query
    def catalog(self) -> list[PluginInfo]:
        """The merged catalog."""
        return list(merge(self._state.entries).values())

    def _memo_changed(self) -> None:
        """Upsert the memo once for all the signals one workflow task brings: an upsert per
        signal put every copy of the catalog in one task's completion, and a burst of large
        entries went over gRPC's 4 MB message limit and failed the task for good."""
        if workflow.patched(CATALOG_COALESCE_PATCH):
            self._changed = True
        else:
            self._publish_memo()

    def _publish_memo(self) -> None:
        workflow.upsert_memo(
            {
                CATALOG_MEMO_KEY: list(merge(self._state.entries).values()),
                CATALOG_WORKERS_MEMO_KEY: [entry.identity for entry in self._state.entries],
            }
        )


def _hide_from_default_lists() -> None:
    """Keep this entity out of Temporal's default workflow lists (see
    ``engine.temporal.telemetry.NAMESPACE_DIVISION``). Entities are started with the attribute; one
    started before it existed sets it when it continues as new (new runs only: the patch
    keeps recorded runs replaying)."""
    if workflow.info().typed_search_attributes.get(NAMESPACE_DIVISION) == ENTITY_DIVISION:
        return
    if workflow.patched(ENTITY_DIVISION_PATCH):
        workflow.upsert_search_attributes([NAMESPACE_DIVISION.value_set(ENTITY_DIVISION)])
