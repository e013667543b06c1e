"""Dynamic modification of a registered definition, as a pure function.

:func:`apply_change` returns a new, validated definition with ``version`` + 1, or raises
:class:`PluginError` and changes nothing. The registry runs it in an update validator (a
rejected update writes nothing to history) and again in the handler. The handler also runs
when a history is replayed, where the validator does not, so it checks with the rules that
never tighten (``strict=False``): a modification accepted under earlier rules replays the
same way after a release tightens the registration rules.

* ``add_node``: the node must have a new id; it joins unconnected.
* ``remove_node``: removes the node and every connection touching it (``NodeNotFound`` if
  absent).
* ``add_connection``: the connection must keep the graph valid (no cycle, known nodes, ports).
* ``replace``: a whole new definition with the same ``workflow_id``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import PluginWorkflow, WorkflowConnection, WorkflowNode
from engine.language.validation import compile_workflow, validate_workflow


class DefinitionChange(BaseModel):
    """One modification of a registered definition (the spec's dynamic modification); the
    argument of the registry entity's ``modify`` update."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["add_node", "remove_node", "add_connection", "replace"]
    node: WorkflowNode | None = None
    node_id: str = ""
    connection: WorkflowConnection | None = None
    workflow: PluginWorkflow | None = None


def apply_change(
    current: PluginWorkflow, change: DefinitionChange, *, strict: bool = True
) -> PluginWorkflow:
    """Apply one change to a copy of ``current`` and validate the result
    (:func:`~engine.language.validation.validate_workflow`, or only
    :func:`~engine.language.validation.compile_workflow` unless ``strict``).

    Raises:
        PluginError: the change is malformed, refers to a missing node, or would make the
            definition invalid.
    """
    wid = current.workflow_id
    updated = current.model_copy(deep=True)
    if change.kind == "add_node":
        if change.node is None:
            raise _malformed(wid, "add_node needs a node")
        if updated.node(change.node.node_id) is not None:
            raise PluginError(
                PluginErrorCode.InvalidWorkflowStructure,
                f"workflow '{wid}' already has a node '{change.node.node_id}'",
            )
        updated.nodes.append(change.node.model_copy(deep=True))
    elif change.kind == "remove_node":
        if updated.node(change.node_id) is None:
            raise PluginError(
                PluginErrorCode.NodeNotFound,
                f"workflow '{wid}' has no node '{change.node_id}'",
            )
        updated.nodes = [n for n in updated.nodes if n.node_id != change.node_id]
        updated.connections = [
            c for c in updated.connections if change.node_id not in (c.source_node, c.target_node)
        ]
    elif change.kind == "add_connection":
        if change.connection is None:
            raise _malformed(wid, "add_connection needs a connection")
        updated.connections.append(change.connection.model_copy(deep=True))
    else:
        if change.workflow is None:
            raise _malformed(wid, "replace needs a workflow")
        if change.workflow.workflow_id != wid:
            raise _malformed(
                wid,
                f"replacement has workflow_id '{change.workflow.workflow_id}', expected '{wid}'",
            )
        updated = change.workflow.model_copy(deep=True)
    updated.version = current.version + 1
    if strict:
        validate_workflow(updated)
    else:
        compile_workflow(updated)
    return updated


def _malformed(workflow_id: str, message: str) -> PluginError:
    return PluginError(
        PluginErrorCode.InvalidWorkflowStructure, f"workflow '{workflow_id}': {message}"
    )
