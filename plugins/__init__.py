"""The plugin interface and the built-in plugins."""

from plugins._context import PluginContext
from plugins._registry import Plugin, PluginFunction, PluginRegistry, PluginResult, plugin

__all__ = ["Plugin", "PluginContext", "PluginFunction", "PluginRegistry", "PluginResult", "plugin"]
