"""Durable graph workflows on Temporal: the spec's AdvancedPluginOrchestrator v2.

    from engine import AdvancedPluginOrchestrator, PluginWorkflow, WorkflowNode

The public names are re-exported here; everything else is internal. They load on first use
(PEP 562), so importing one submodule (the CLI's parser, a worker's models) does not import
the whole client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.errors import PluginError, PluginErrorCode
    from engine.models import (
        ConnectionType,
        PluginWorkflow,
        WorkflowConnection,
        WorkflowEvent,
        WorkflowEventType,
        WorkflowExecutionContext,
        WorkflowExecutionMode,
        WorkflowExecutionStatus,
        WorkflowNode,
        WorkflowNodeType,
    )
    from engine.orchestrator import AdvancedPluginOrchestrator
    from engine.validation import validate_workflow

_EXPORTS = {
    "AdvancedPluginOrchestrator": "engine.orchestrator",
    "ConnectionType": "engine.models",
    "PluginError": "engine.errors",
    "PluginErrorCode": "engine.errors",
    "PluginWorkflow": "engine.models",
    "WorkflowConnection": "engine.models",
    "WorkflowEvent": "engine.models",
    "WorkflowEventType": "engine.models",
    "WorkflowExecutionContext": "engine.models",
    "WorkflowExecutionMode": "engine.models",
    "WorkflowExecutionStatus": "engine.models",
    "WorkflowNode": "engine.models",
    "WorkflowNodeType": "engine.models",
    "validate_workflow": "engine.validation",
}

__all__ = [
    "AdvancedPluginOrchestrator",
    "ConnectionType",
    "PluginError",
    "PluginErrorCode",
    "PluginWorkflow",
    "WorkflowConnection",
    "WorkflowEvent",
    "WorkflowEventType",
    "WorkflowExecutionContext",
    "WorkflowExecutionMode",
    "WorkflowExecutionStatus",
    "WorkflowNode",
    "WorkflowNodeType",
    "validate_workflow",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
