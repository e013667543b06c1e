"""The plugin interface and the built-in plugins.

Configuration fields that hold expressions are declared with :data:`CelExpression`,
:data:`CelCondition` or :data:`JmesPathExpression` (see :mod:`engine.expressions`), so that
registration compiles them.
"""

from engine.expressions import CelCondition, CelExpression, JmesPathExpression
from plugins._context import PluginContext
from plugins._registry import (
    ENTRY_POINT_GROUP,
    NoConfig,
    Plugin,
    PluginBase,
    PluginFunction,
    PluginRegistry,
    PluginResult,
    plugin,
)
from plugins._source import (
    GeneratorSource,
    Source,
    SourceFactory,
    SourceItem,
    SourceSpec,
    source_plugin,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "CelCondition",
    "CelExpression",
    "GeneratorSource",
    "JmesPathExpression",
    "NoConfig",
    "Plugin",
    "PluginBase",
    "PluginContext",
    "PluginFunction",
    "PluginRegistry",
    "PluginResult",
    "Source",
    "SourceFactory",
    "SourceItem",
    "SourceSpec",
    "plugin",
    "source_plugin",
]
