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
    from engine.base.errors import PluginError, PluginErrorCode
    from engine.client.orchestrator import AdvancedPluginOrchestrator
    from engine.language.models import (
        ConnectionType,
        NodeCompensation,
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
    from engine.language.validation import validate_workflow

_EXPORTS = {
    "AdvancedPluginOrchestrator": "engine.client.orchestrator",
    "ConnectionType": "engine.language.models",
    "NodeCompensation": "engine.language.models",
    "PluginError": "engine.base.errors",
    "PluginErrorCode": "engine.base.errors",
    "PluginWorkflow": "engine.language.models",
    "WorkflowConnection": "engine.language.models",
    "WorkflowEvent": "engine.language.models",
    "WorkflowEventType": "engine.language.models",
    "WorkflowExecutionContext": "engine.language.models",
    "WorkflowExecutionMode": "engine.language.models",
    "WorkflowExecutionStatus": "engine.language.models",
    "WorkflowNode": "engine.language.models",
    "WorkflowNodeType": "engine.language.models",
    "validate_workflow": "engine.language.validation",
}

__all__ = [
    "AdvancedPluginOrchestrator",
    "ConnectionType",
    "NodeCompensation",
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
