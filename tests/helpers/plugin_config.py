"""Calling a plugin the way the engine does, and reading its configuration errors."""

from __future__ import annotations

import re
from typing import Any

from plugins import Plugin, PluginContext


def call(plugin: Plugin, inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext) -> Any:
    """``plugin``'s function on ``config`` as the engine hands it over: checked by the
    plugin's model first (a built-in receives the model, not the dict)."""
    return plugin.function(inputs, plugin.check_config(config), ctx)


def names_key(message: str, key: str) -> bool:
    """Whether a configuration error names config key ``key``: as the model check does
    (``configuration of plugin 'p': key: problem``, ``key.0: ...`` for an item) or as a
    plugin's own check does (``config 'key' ...``)."""
    if f"'{key}'" in message:
        return True
    return re.search(rf"(?:: |; ){re.escape(key)}(?:\.[^:;\s]+)?: ", message) is not None
