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
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.contracts import DEFINITION_WORKFLOW, DefinitionChange, DefinitionState
    from engine.errors import PluginError, PluginErrorCode
    from engine.models import PluginWorkflow
    from engine.modification import apply_change


@workflow.defn(name=DEFINITION_WORKFLOW)
class PluginWorkflowDefinition:
    """Holds the current version of one registered definition."""

    @workflow.init
    def __init__(self, state: DefinitionState) -> None:
        self._state = state
        self._unregistered = False

    @workflow.run
    async def run(self, state: DefinitionState) -> None:
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
    def modify(self, change: DefinitionChange) -> PluginWorkflow:
        """Apply a validated change and return the new definition."""
        self._state = DefinitionState(workflow=apply_change(self._state.workflow, change))
        return self._state.workflow

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
