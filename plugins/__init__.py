"""The plugin interface and the built-in plugins."""

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
    "GeneratorSource",
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
