"""Plugins and the registry a worker is built with.

A plugin is a callable ``(inputs, config, ctx) -> dict``, async or not, registered under a
``plugin_id``. Synchronous plugins run in a thread pool so they never stall the worker's event
loop (heartbeats of other nodes keep flowing). The registry is built explicitly when a worker
starts; importing a module registers nothing.

    registry = PluginRegistry.with_builtins()

    @registry.plugin("greet")
    async def greet(inputs, config, ctx):
        return {"greeting": f"hello {config['name']}"}

    registry.register("shout", lambda inputs, config, ctx: {"text": config["text"].upper()})

Sources of EventDriven and Streaming runs (:mod:`plugins._source`) are registered the same
way; one id may name both a function (batch modes) and a source (long-running modes).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from plugins._context import PluginContext
from plugins._source import SourceSpec

PluginResult = dict[str, Any]
PluginFunction = Callable[
    [dict[str, Any], dict[str, Any], PluginContext], Awaitable[PluginResult] | PluginResult
]


@dataclass(frozen=True)
class Plugin:
    """A plugin function with its id and documentation."""

    plugin_id: str
    function: PluginFunction
    description: str = ""

    @property
    def is_async(self) -> bool:
        call = getattr(self.function, "__call__", None)  # noqa: B004 (async callable objects)
        return inspect.iscoroutinefunction(self.function) or inspect.iscoroutinefunction(call)


def plugin(plugin_id: str, *, description: str = "") -> Callable[[PluginFunction], Plugin]:
    """Decorator turning a function into a :class:`Plugin` (it registers nothing)."""

    def wrap(function: PluginFunction) -> Plugin:
        doc = description or (inspect.getdoc(function) or "").split("\n\n")[0]
        return Plugin(plugin_id, function, doc)

    return wrap


class PluginRegistry:
    """The plugins one worker can run, by id. Duplicate ids are rejected."""

    def __init__(self, plugins: Iterable[Plugin | SourceSpec] = ()) -> None:
        self._plugins: dict[str, Plugin] = {}
        self._sources: dict[str, SourceSpec] = {}
        for item in plugins:
            self.add(item)

    @classmethod
    def with_builtins(cls) -> PluginRegistry:
        """A registry holding every built-in plugin."""
        from plugins.builtin import BUILTIN_PLUGINS

        return cls(BUILTIN_PLUGINS)

    def add(self, item: Plugin | SourceSpec) -> Plugin | SourceSpec:
        """Add a :class:`Plugin` or a source. Raises ValueError on a duplicate or empty id."""
        if not item.plugin_id:
            raise ValueError("plugin_id must not be empty")
        table: dict[str, Any] = self._sources if isinstance(item, SourceSpec) else self._plugins
        if item.plugin_id in table:
            kind = "source" if isinstance(item, SourceSpec) else "plugin"
            raise ValueError(f"{kind} '{item.plugin_id}' is already registered")
        table[item.plugin_id] = item
        return item

    def register(
        self, plugin_id: str, function: PluginFunction, *, description: str = ""
    ) -> Plugin:
        """Register a function under ``plugin_id``."""
        item = Plugin(plugin_id, function, description)
        self.add(item)
        return item

    def plugin(
        self, plugin_id: str, *, description: str = ""
    ) -> Callable[[PluginFunction], Plugin]:
        """Decorator form of :meth:`register`."""

        def wrap(function: PluginFunction) -> Plugin:
            item = plugin(plugin_id, description=description)(function)
            self.add(item)
            return item

        return wrap

    def get(self, plugin_id: str) -> Plugin | None:
        """The function plugin with this id (batch modes, stream processors and sinks)."""
        return self._plugins.get(plugin_id)

    def get_source(self, plugin_id: str) -> SourceSpec | None:
        """The source with this id (EventDriven and Streaming Source nodes)."""
        return self._sources.get(plugin_id)

    def ids(self) -> list[str]:
        """Registered ids (functions and sources), sorted."""
        return sorted(self._plugins.keys() | self._sources.keys())

    def __contains__(self, plugin_id: object) -> bool:
        return plugin_id in self._plugins or plugin_id in self._sources

    def __len__(self) -> int:
        return len(self.ids())
