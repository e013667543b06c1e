"""Plugins and the registry a worker is built with.

The plugin interface is :class:`PluginBase`: a ``plugin_id``, a pydantic model for the
configuration (a definition's node ``configuration`` is checked against it, with errors
naming node and field), optional declared input and output ports, and one ``run`` that
receives the validated model (async, or synchronous for blocking work, which the worker runs
in its thread pool; the built-ins are written so)::

    class Greet(PluginBase):
        plugin_id = "greet"
        input_ports = ("person",)

        class Config(BaseModel):
            greeting: str = "hello"

        async def run(self, inputs, config, ctx):
            return {"text": f"{config.greeting} {inputs['person']['name']}"}

    registry = PluginRegistry.with_builtins()
    registry.add(Greet())

Plain callables ``(inputs, config, ctx) -> dict``, async or not, keep working (they get the
configuration as a dict; ``plugin(..., config=Model)`` adds a schema and a check). Synchronous
plugins run in a thread pool so they never stall the worker's event loop. The registry is
built explicitly when a worker starts; importing a module registers nothing, and separately
installed packages add plugins through the ``orchestrator.plugins`` entry point group
(:meth:`PluginRegistry.discover`).

    @registry.plugin("greet")
    async def greet(inputs, config, ctx):
        return {"greeting": f"hello {config['name']}"}

    registry.register("shout", lambda inputs, config, ctx: {"text": config["text"].upper()})

Sources of EventDriven and Streaming runs (:mod:`plugins._source`) are registered the same
way; one id may name both a function (batch modes) and a source (long-running modes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

from engine.base.errors import PluginError, PluginErrorCode
from plugins._plugin import (
    Plugin,
    PluginBase,
    PluginFunction,
    plugin,
)
from plugins._source import SourceSpec

ENTRY_POINT_GROUP = "orchestrator.plugins"

Registrable = Plugin | SourceSpec | PluginBase


class PluginRegistry:
    """The plugins one worker can run, by id. Duplicate ids are rejected."""

    def __init__(self, plugins: Iterable[Registrable] = ()) -> None:
        self._plugins: dict[str, Plugin] = {}
        self._sources: dict[str, SourceSpec] = {}
        for item in plugins:
            self.add(item)

    @classmethod
    def with_builtins(cls) -> PluginRegistry:
        """A registry holding every built-in plugin."""
        # On first use: the built-ins load CEL, JMESPath and HTTP clients, which a process
        # that only reads definitions never needs.
        from plugins.builtin import BUILTIN_PLUGINS

        return cls(BUILTIN_PLUGINS)

    @classmethod
    def default(cls) -> PluginRegistry:
        """The built-ins plus every plugin installed packages offer (entry points)."""
        registry = cls.with_builtins()
        registry.discover()
        return registry

    def discover(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Add the plugins of installed packages: each entry point of ``group`` names a
        plugin (:class:`Plugin`, source, :class:`PluginBase` instance or subclass), a list of
        them, or a function returning either. Returns the ids added.

        Raises:
            PluginError: ``InvalidConfiguration`` naming an entry point that cannot be loaded
                or offers something else (a worker should not start half-equipped).
        """
        added: list[str] = []
        for point in sorted(entry_points(group=group), key=lambda p: p.name):
            try:
                offered = point.load()
                if (
                    callable(offered)
                    and not isinstance(offered, Plugin | SourceSpec)
                    and not (isinstance(offered, type) and issubclass(offered, PluginBase))
                ):
                    offered = offered()
                items = offered if isinstance(offered, list | tuple) else [offered]
                for item in items:
                    added.append(self.add(item).plugin_id)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    PluginErrorCode.InvalidConfiguration,
                    f"entry point '{point.name}' ({point.value}) of group '{group}' cannot be "
                    f"used: {type(exc).__name__}: {exc}",
                ) from exc
        return added

    def add(self, item: Registrable | type[PluginBase]) -> Plugin | SourceSpec:
        """Add a plugin or a source. Raises ValueError on a duplicate or empty id, TypeError
        on anything else."""
        if isinstance(item, type) and issubclass(item, PluginBase):
            item = item()
        if isinstance(item, PluginBase):
            item = item.as_plugin()
        if not isinstance(item, Plugin | SourceSpec):
            raise TypeError(f"not a plugin: {item!r}")
        if not item.plugin_id:
            raise ValueError("plugin_id must not be empty")
        table: dict[str, Any] = self._sources if isinstance(item, SourceSpec) else self._plugins
        if item.plugin_id in table:
            kind = "source" if isinstance(item, SourceSpec) else "plugin"
            raise ValueError(f"{kind} '{item.plugin_id}' is already registered")
        table[item.plugin_id] = item
        return item

    def register(
        self,
        plugin_id: str,
        function: PluginFunction,
        *,
        description: str = "",
        light: bool = False,
    ) -> Plugin:
        """Register a function under ``plugin_id`` (``light``: see :attr:`Plugin.light`)."""
        item = Plugin(plugin_id, function, description, light=light)
        self.add(item)
        return item

    def plugin(
        self, plugin_id: str, *, description: str = "", light: bool = False
    ) -> Callable[[PluginFunction], Plugin]:
        """Decorator form of :meth:`register`."""

        def wrap(function: PluginFunction) -> Plugin:
            item = plugin(plugin_id, description=description, light=light)(function)
            self.add(item)
            return item

        return wrap

    def plugins(self) -> list[Plugin]:
        """The function plugins, by id."""
        return [self._plugins[k] for k in sorted(self._plugins)]

    def sources(self) -> list[SourceSpec]:
        """The sources, by id."""
        return [self._sources[k] for k in sorted(self._sources)]

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
