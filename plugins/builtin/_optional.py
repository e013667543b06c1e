"""Built-ins whose client library is an optional extra of the package.

The core install carries what the engine and the file, CSV, CEL, JMESPath and HTTP built-ins
need. The SQL writer and the broker sources need client libraries most deployments never
use, so they come as extras (``pip install 'plugin-orchestrator[redis]'``, or ``[all]``).

A worker without an extra still offers the plugin, without a configuration schema, so that
a definition using it registers and its node fails once, non-retryably, with a message
naming the package and the extra to install on the workers, instead of the worker failing
to start or the plugin silently missing from the catalog.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from engine.base.errors import PluginError, PluginErrorCode
from plugins._context import PluginContext
from plugins._plugin import Plugin
from plugins._source import Source, SourceSpec


@dataclass(frozen=True)
class Optional:
    """A built-in in ``module`` (its ``attribute``) that needs the ``extra``."""

    module: str
    attribute: str
    plugin_id: str
    extra: str
    source: bool


OPTIONAL_BUILTINS = (
    Optional(
        "plugins.builtin.database_writer", "database_writer_plugin", "database_writer", "sql", False
    ),
    Optional(
        "plugins.builtin.mqtt_subscriber", "open_mqtt_subscriber", "mqtt_subscriber", "mqtt", True
    ),
    Optional(
        "plugins.builtin.redis_stream_source",
        "open_redis_stream_source",
        "redis_stream_source",
        "redis",
        True,
    ),
    Optional(
        "plugins.builtin.nats_jetstream_source",
        "open_nats_jetstream_source",
        "nats_jetstream_source",
        "nats",
        True,
    ),
    Optional(
        "plugins.builtin.kafka_consumer", "open_kafka_consumer", "kafka_consumer", "kafka", True
    ),
)


def load(optional: Optional) -> Plugin | SourceSpec:
    """The built-in, or a stand-in that explains which extra it needs."""
    try:
        loaded: Plugin | SourceSpec = getattr(
            importlib.import_module(optional.module), optional.attribute
        )
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("plugins"):
            raise  # our own module is missing: a broken install, not a missing extra
        return _stand_in(optional, exc.name)
    return loaded


def _stand_in(optional: Optional, package: str) -> Plugin | SourceSpec:
    message = (
        f"plugin '{optional.plugin_id}' needs the Python package '{package}', which is not "
        f"installed on this worker: install the '{optional.extra}' extra there "
        f"(pip install 'plugin-orchestrator[{optional.extra}]')"
    )
    description = f"unavailable on this worker: needs the '{optional.extra}' extra"

    if optional.source:

        async def open_source(
            config: dict[str, Any], checkpoint: Any, ctx: PluginContext
        ) -> Source:
            raise PluginError(PluginErrorCode.InvalidConfiguration, message)

        return SourceSpec(optional.plugin_id, open_source, description)

    def run(inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext) -> dict[str, Any]:
        raise PluginError(PluginErrorCode.InvalidConfiguration, message)

    return Plugin(optional.plugin_id, run, description)
