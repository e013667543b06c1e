"""The plugin interface and the built-in plugins."""

from plugins._context import PluginContext
from plugins._registry import Plugin, PluginFunction, PluginRegistry, PluginResult, plugin
from plugins._source import (
    GeneratorSource,
    Source,
    SourceFactory,
    SourceItem,
    SourceSpec,
    source_plugin,
)

__all__ = [
    "GeneratorSource",
    "Plugin",
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
