"""The activity through which a running execution reads its registered definition.

A long-running execution adopts new versions of its definition. It never takes one from a
signal (anyone who can reach Temporal can send one): told that a new version exists, it runs
this activity, which asks the definition's registry entity with the worker's own client (the
entity's state changes only through its validated updates), then validates the answer with
registration's rules (:func:`engine.language.validation.validate_workflow`). Validating here rather
than in workflow code keeps replay deterministic when a later release tightens those rules:
the verdict is recorded in history with the activity's result.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from temporalio import activity
from temporalio.client import Client, WorkflowQueryRejectedError
from temporalio.common import QueryRejectCondition
from temporalio.service import RPCError, RPCStatusCode

from engine.base.errors import PluginError
from engine.language.models import PluginWorkflow
from engine.language.validation import validate_workflow
from engine.runtime.contracts import (
    READ_DEFINITION_ACTIVITY,
    DefinitionLookup,
    DefinitionReading,
    definition_entity_id,
)

log = structlog.get_logger("activities.registry")
# Within the activity's start-to-close timeout (engine.temporal.workflow): a registry whose worker
# does
# not answer fails this attempt, and the next one tries again.
_QUERY_TIMEOUT = timedelta(seconds=10)


class RegistryActivities:
    """Activities that read the registry, bound to the worker's client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=READ_DEFINITION_ACTIVITY)
    async def read_registered_definition(self, lookup: DefinitionLookup) -> DefinitionReading:
        """The current registered definition, validated as registration validates; not
        registered: an empty reading. Other failures (server unavailable) raise and the
        activity is retried."""
        entity_id = definition_entity_id(lookup.workflow_id, lookup.task_queue)
        handle = self._client.get_workflow_handle(entity_id)
        try:
            definition: PluginWorkflow = await handle.query(
                "definition",
                result_type=PluginWorkflow,
                reject_condition=QueryRejectCondition.NOT_OPEN,
                rpc_timeout=_QUERY_TIMEOUT,
            )
        except WorkflowQueryRejectedError:
            return DefinitionReading()  # unregistered: the entity has completed
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return DefinitionReading()
            raise
        try:
            validate_workflow(definition)
        except PluginError as exc:
            log.warning(
                "registered definition fails validation",
                workflow_id=lookup.workflow_id,
                version=definition.version,
                error=exc.message,
            )
            return DefinitionReading(version=definition.version, refused=exc.message)
        return DefinitionReading(definition=definition, version=definition.version)
