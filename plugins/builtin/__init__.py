"""The built-in plugins, in the order ``BUILTIN_PLUGINS`` lists them.

Each module's docstring documents its plugin's config keys, inputs and output keys:

* :mod:`plugins.builtin.data_source` (``data_source``): records from a file, config or inputs.
* :mod:`plugins.builtin.data_processor` (``data_processor``): filter (CEL), select, rename,
  upper-case, sort and limit records.
* :mod:`plugins.builtin.data_sink` (``data_sink``): write records to JSON, JSON Lines or CSV.
* :mod:`plugins.builtin.file_validator` (``file_validator``): check a file (and its CSV).
* :mod:`plugins.builtin.csv_processor` (``csv_processor``): summarise a CSV file.
* :mod:`plugins.builtin.error_handler` (``error_handler``): report and quarantine a failure.

Stream processors and sinks (Streaming calls them once per micro-batch with lists of items;
they work the same in the batch modes):

* :mod:`plugins.builtin.data_filter` (``data_filter``): keep the items a CEL condition holds for.
* :mod:`plugins.builtin.data_transformer` (``data_transformer``): set fields from CEL
  expressions, drop and rename fields.
* :mod:`plugins.builtin.database_writer` (``database_writer``): write items to a SQL table
  (SQLAlchemy), upserting by key for an exactly-once effect.

Integration and reshaping:

* :mod:`plugins.builtin.http_request` (``http_request``): call an HTTP(S) endpoint (httpx),
  retrying 5xx answers and failed connections within the attempt. Asynchronous.
* :mod:`plugins.builtin.json_transform` (``json_transform``): reshape the inputs with
  JMESPath expressions.

The function plugins above are synchronous (the engine runs them in a thread) except
``http_request``, which runs on the worker's event loop. The file writers write atomically,
and every plugin but ``http_request`` (whose effect is the remote endpoint's) gives the same
result when retried with the same inputs.

Every built-in declares a configuration model (:mod:`plugins.builtin._models`): the engine
checks a node's configuration against it when the node runs and hands the plugin the
validated model (the function plugins are :class:`plugins.PluginBase` classes, the sources
are declared with ``passes_model=True``), and its JSON Schema in the worker's plugin catalog
is what registration checks node configurations against.

The SQL writer and the broker sources need client libraries that are extras of the package
(``sql``, ``mqtt``, ``redis``, ``nats``, ``kafka``; ``all`` for every one): see
:mod:`plugins.builtin._optional` for what a worker without one offers.

Sources of the long-running modes (EventDriven events, Streaming items), each documenting its
delivery semantics and checkpoint format:

* :mod:`plugins.builtin.file_system_monitor` (``file_system_monitor``): files created or
  changed in a watched directory (a polling drop zone).
* :mod:`plugins.builtin.jsonl_source` (``jsonl_source``): lines of a JSON Lines file or a
  directory of them, resumable by byte offset, optionally following.
* :mod:`plugins.builtin.mqtt_subscriber` (``mqtt_subscriber``): MQTT messages from a
  persistent session, acknowledged on commit.
* :mod:`plugins.builtin.redis_stream_source` (``redis_stream_source``): a Redis Stream read
  through a consumer group, acknowledged on commit.
* :mod:`plugins.builtin.nats_jetstream_source` (``nats_jetstream_source``): a NATS JetStream
  stream read with a durable pull consumer, acknowledged on commit.
* :mod:`plugins.builtin.kafka_consumer` (``kafka_consumer``): Kafka topics read through a
  consumer group (aiokafka), offsets committed on commit. Not tested against a broker here;
  see its module documentation.
"""

from plugins._plugin import Plugin
from plugins._source import SourceSpec
from plugins.builtin._optional import OPTIONAL_BUILTINS, load
from plugins.builtin.csv_processor import csv_processor_plugin
from plugins.builtin.data_filter import data_filter_plugin
from plugins.builtin.data_processor import data_processor_plugin
from plugins.builtin.data_sink import data_sink_plugin
from plugins.builtin.data_source import data_source_plugin, data_source_stream
from plugins.builtin.data_transformer import data_transformer_plugin
from plugins.builtin.error_handler import error_handler_plugin
from plugins.builtin.file_system_monitor import open_file_system_monitor
from plugins.builtin.file_validator import file_validator_plugin
from plugins.builtin.http_request import http_request_plugin
from plugins.builtin.json_transform import json_transform_plugin
from plugins.builtin.jsonl_source import open_jsonl_source

_OPTIONAL = {optional.plugin_id: load(optional) for optional in OPTIONAL_BUILTINS}

BUILTIN_PLUGINS: list[Plugin | SourceSpec] = [
    data_source_plugin,
    data_source_stream,
    data_processor_plugin,
    data_sink_plugin,
    file_validator_plugin,
    csv_processor_plugin,
    error_handler_plugin,
    data_filter_plugin,
    data_transformer_plugin,
    _OPTIONAL["database_writer"],
    http_request_plugin,
    json_transform_plugin,
    open_file_system_monitor,
    open_jsonl_source,
    _OPTIONAL["mqtt_subscriber"],
    _OPTIONAL["redis_stream_source"],
    _OPTIONAL["nats_jetstream_source"],
    _OPTIONAL["kafka_consumer"],
]

__all__ = [
    "BUILTIN_PLUGINS",
    "csv_processor_plugin",
    "data_filter_plugin",
    "data_processor_plugin",
    "data_sink_plugin",
    "data_source_plugin",
    "data_source_stream",
    "data_transformer_plugin",
    "error_handler_plugin",
    "file_validator_plugin",
    "http_request_plugin",
    "json_transform_plugin",
    "open_file_system_monitor",
    "open_jsonl_source",
]
