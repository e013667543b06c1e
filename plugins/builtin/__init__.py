"""The built-in plugins, in the order ``BUILTIN_PLUGINS`` lists them.

Each module's docstring documents its plugin's config keys, inputs and output keys:

* :mod:`plugins.builtin.data_source` (``data_source``): records from a file, config or inputs.
* :mod:`plugins.builtin.data_processor` (``data_processor``): filter (CEL), select, rename,
  upper-case, sort and limit records.
* :mod:`plugins.builtin.data_sink` (``data_sink``): write records to JSON, JSON Lines or CSV.
* :mod:`plugins.builtin.file_validator` (``file_validator``): check a file (and its CSV).
* :mod:`plugins.builtin.csv_processor` (``csv_processor``): summarise a CSV file.
* :mod:`plugins.builtin.error_handler` (``error_handler``): report and quarantine a failure.

All are synchronous (the engine runs them in a thread), write files atomically, and give the
same result when retried with the same inputs.
"""

from plugins._registry import Plugin
from plugins.builtin.csv_processor import csv_processor_plugin
from plugins.builtin.data_processor import data_processor_plugin
from plugins.builtin.data_sink import data_sink_plugin
from plugins.builtin.data_source import data_source_plugin
from plugins.builtin.error_handler import error_handler_plugin
from plugins.builtin.file_validator import file_validator_plugin

BUILTIN_PLUGINS: list[Plugin] = [
    data_source_plugin,
    data_processor_plugin,
    data_sink_plugin,
    file_validator_plugin,
    csv_processor_plugin,
    error_handler_plugin,
]

__all__ = [
    "BUILTIN_PLUGINS",
    "csv_processor_plugin",
    "data_processor_plugin",
    "data_sink_plugin",
    "data_source_plugin",
    "error_handler_plugin",
    "file_validator_plugin",
]
