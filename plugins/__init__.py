"""The plugin interface and the built-in plugins.

Configuration fields that hold expressions are declared with :data:`CelExpression`,
:data:`CelCondition` or :data:`JmesPathExpression` (see :mod:`engine.language.expressions`), so that
registration compiles them.
"""

from engine.language.expressions import CelCondition, CelExpression, JmesPathExpression
from plugins._context import PluginContext
from plugins._plugin import (
    NoConfig,
    Plugin,
    PluginBase,
    PluginFunction,
    PluginResult,
    plugin,
)
from plugins._registry import ENTRY_POINT_GROUP, PluginRegistry
from plugins._source import (
    MAX_CHECKPOINT_BYTES,
    GeneratorSource,
    Source,
    SourceBase,
    SourceFactory,
    SourceItem,
    SourceSpec,
    checked_checkpoint,
    source_plugin,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_CHECKPOINT_BYTES",
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
    "SourceBase",
    "SourceFactory",
    "SourceItem",
    "SourceSpec",
    "checked_checkpoint",
    "plugin",
    "source_plugin",
]
