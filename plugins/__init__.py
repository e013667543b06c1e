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
    MAX_CHECKPOINT_BYTES,
    GeneratorSource,
    Source,
    SourceFactory,
    SourceItem,
    SourceSpec,
    checked_checkpoint,
    source_plugin,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_CHECKPOINT_BYTES",
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
    "checked_checkpoint",
    "plugin",
    "source_plugin",
]
