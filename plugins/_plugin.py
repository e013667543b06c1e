"""What a plugin is: :class:`PluginBase` (the interface the built-ins use), :class:`Plugin` (a
callable with its id, configuration model and ports) and the :func:`plugin` decorator. The
registry that holds them is :mod:`plugins._registry`; see its docstring for examples."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from plugins._config import validated
from plugins._context import PluginContext

PluginResult = dict[str, Any]
PluginFunction = Callable[
    [dict[str, Any], dict[str, Any], PluginContext], Awaitable[PluginResult] | PluginResult
]


@dataclass(frozen=True)
class Plugin:
    """A plugin as the worker runs it: id, callable, documentation, configuration model and
    declared ports.

    ``passes_model``: the callable receives the validated configuration model (class-based
    plugins) rather than a dict.

    ``light``: the plugin is short (well under a second), idempotent and needs no
    heartbeats, so nodes with ``execution: auto`` run it as a local activity (see
    :mod:`engine.language.options`). Pure transforms are light; anything doing I/O that may
    be slow or must not be repeated is not.
    """

    plugin_id: str
    function: PluginFunction
    description: str = ""
    config_model: type[BaseModel] | None = None
    input_ports: tuple[str, ...] = ()
    output_ports: tuple[str, ...] = ()
    passes_model: bool = False
    light: bool = False

    @property
    def is_async(self) -> bool:
        call = getattr(self.function, "__call__", None)  # noqa: B004 (async callable objects)
        return inspect.iscoroutinefunction(self.function) or inspect.iscoroutinefunction(call)

    def check_config(self, config: dict[str, Any]) -> Any:
        """Validate ``config`` against the model (keys it does not declare are ignored: they
        may be workflow-wide settings); return what the callable receives.

        Raises:
            PluginError: ``InvalidConfiguration`` naming every bad field.
        """
        if self.config_model is None:
            return config
        model = validated(self.config_model, config, f"plugin '{self.plugin_id}'")
        return model if self.passes_model else {**config, **model.model_dump(mode="json")}


class NoConfig(BaseModel):
    """The configuration of a plugin that takes none."""

    model_config = ConfigDict(extra="forbid")


class PluginBase(abc.ABC):
    """Base class of a plugin: a ``plugin_id``, a ``Config`` model, optional ports, and one
    ``run(inputs, config, ctx) -> dict`` (``config`` is a validated ``Config``). ``run`` is
    async, or synchronous for blocking work: the worker then runs it in its thread pool.
    The built-in plugins are written this way. ``light = True`` declares it short, idempotent
    and free of heartbeats (:attr:`Plugin.light`)."""

    plugin_id: ClassVar[str]
    light: ClassVar[bool] = False
    description: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]] = NoConfig
    input_ports: ClassVar[tuple[str, ...]] = ()
    output_ports: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def run(
        self, inputs: dict[str, Any], config: Any, ctx: PluginContext
    ) -> PluginResult | Awaitable[PluginResult]:
        """Do the node's work and return a JSON object (``async def`` or plain ``def``)."""

    def as_plugin(self) -> Plugin:
        """The :class:`Plugin` the registry keeps for this instance."""
        doc = self.description or (inspect.getdoc(type(self)) or "").split("\n\n")[0]
        return Plugin(
            plugin_id=self.plugin_id,
            function=self.run,
            description=doc,
            config_model=self.Config,
            input_ports=tuple(self.input_ports),
            output_ports=tuple(self.output_ports),
            passes_model=True,
            light=self.light,
        )


def plugin(
    plugin_id: str,
    *,
    description: str = "",
    config: type[BaseModel] | None = None,
    inputs: Iterable[str] = (),
    outputs: Iterable[str] = (),
    light: bool = False,
) -> Callable[[PluginFunction], Plugin]:
    """Decorator turning a function into a :class:`Plugin` (it registers nothing).

    ``config`` is a pydantic model the configuration is checked against (the function still
    receives a dict); ``inputs``/``outputs`` declare ports; ``light`` see :attr:`Plugin.light`.
    """

    def wrap(function: PluginFunction) -> Plugin:
        doc = description or (inspect.getdoc(function) or "").split("\n\n")[0]
        return Plugin(plugin_id, function, doc, config, tuple(inputs), tuple(outputs), light=light)

    return wrap
