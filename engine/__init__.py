"""Durable graph workflows on Temporal: the spec's AdvancedPluginOrchestrator v2.

    from engine import AdvancedPluginOrchestrator, PluginWorkflow, WorkflowNode

The public names are re-exported here; everything else is internal.
"""

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
