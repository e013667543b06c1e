"""What a run reports about each of its nodes, typed; the API's dict is built from it only
when a context is made (``WorkflowExecutionContext.node_states``).

Node calls of an EventDriven pass are keyed ``node#pass`` (a node runs once per event): the
key of a call and the node a key names are :func:`call_key` and :func:`key_node`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from engine.runtime.scheduler import NodeStatus

_PASS_MARK = "#"


def call_key(node_id: str, pass_id: int = 0) -> str:
    """The key of a node's call: the node id, or ``node#pass`` in an EventDriven pass."""
    return f"{node_id}{_PASS_MARK}{pass_id}" if pass_id else node_id


def key_node(key: str) -> str:
    """The node a call key names (inverse of :func:`call_key`; node ids never hold ``#``)."""
    return key.split(_PASS_MARK)[0]


@dataclass(frozen=True, slots=True)
class NodeState:
    """One node's state in a run's context.

    A batch run's node has ``attempts``, times, its ``result`` or ``error`` (a dict) and
    whether an operator completed it; a long run's node has its ``counters`` and the last
    result or error (a message). A node that started a child execution names it; a node
    whose compensation has begun shows it (status, plugin_id, attempts, times, error).
    """

    node_id: str
    plugin_id: str
    status: NodeStatus
    attempts: int = 0
    started_at: str | None = None  # ISO 8601
    completed_at: str | None = None
    counters: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | str | None = None
    skipped_by_operator: bool = False
    child_execution_id: str | None = None
    compensation: dict[str, Any] | None = None  # see engine.runtime.compensation

    def as_dict(self) -> dict[str, Any]:
        """The API's form (keys in this order; absent ones left out)."""
        data: dict[str, Any] = {
            "node_id": self.node_id,
            "plugin_id": self.plugin_id,
            "status": self.status.value,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }
        if self.counters is not None:
            data["counters"] = self.counters
        if self.result is not None:
            data["result"] = self.result
        if self.error is not None:
            data["error"] = self.error
        if self.skipped_by_operator:
            data["skipped_by_operator"] = True
        if self.child_execution_id is not None:
            data["child_execution_id"] = self.child_execution_id
        if self.compensation is not None:
            data["compensation"] = self.compensation
        return data


def node_state_dicts(
    states: Mapping[str, NodeState], children: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """``WorkflowExecutionContext.node_states`` of ``states``; ``children``: the child
    execution each call started, by call key (a node's last call's child is the one shown)."""
    by_node: dict[str, str] = {}
    for key, child in (children or {}).items():
        by_node[key_node(key)] = child
    return {
        node_id: (
            replace(state, child_execution_id=by_node[node_id]) if node_id in by_node else state
        ).as_dict()
        for node_id, state in states.items()
    }
