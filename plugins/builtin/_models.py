"""Building blocks of the built-in plugins' configuration models.

Every built-in declares a pydantic model of its configuration. The engine checks a function
node's configuration against it when the node runs (keys the model does not declare are
ignored there, as they may be workflow-wide settings), and its JSON Schema is published in the
worker's plugin catalog, where registering a workflow checks every node's configuration
against it: an unknown key (``extra="forbid"``), a wrong type or an out-of-range value is
refused with a message naming node and field.

The models are strict: no type coercion (``"5"`` is not an integer, ``1`` is not ``true``),
so a model and its JSON Schema accept the same configurations; the few rules that span
fields (``mqtt_subscriber``'s password needs a user name, ``http_request`` takes one body,
``json_transform`` one of ``mapping`` and ``expression``) are written into the schema too.
Fields holding expressions are declared as such (:data:`CelExpression`, :data:`CelCondition`,
:data:`JmesPathExpression`, from :mod:`engine.language.expressions`): registration compiles them.

The model is the plugins' one configuration path: a function plugin is a
:class:`plugins.PluginBase` whose ``run`` receives its validated model, a source is declared
with ``source_plugin(..., passes_model=True)`` and opened with its model; none parses the
dict by hand. The few rules a JSON Schema cannot express (a URL's host, HTTP header names,
a non-empty JMESPath mapping, Kafka broker lists) are model validators that raise the
built-ins' own ``config_error`` (a ``PluginError``, which pydantic passes through unchanged):
registration cannot check them, and a node fails with ``InvalidConfiguration`` naming the key
when it runs. What depends on the data, the file system or a server (a file's extension
giving its format, a directory that must exist, a database URL SQLAlchemy cannot load) stays
with the code that uses it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from engine.language.expressions import CelCondition, CelExpression, JmesPathExpression

__all__ = [
    "DELIMITER_DESCRIPTION",
    "CelCondition",
    "CelExpression",
    "Delimiter",
    "JmesPathExpression",
    "NonEmptyStr",
    "NonNegativeInt",
    "NonNegativeSeconds",
    "PluginConfig",
    "PositiveSeconds",
    "RecordFormat",
]


class PluginConfig(BaseModel):
    """Base of the built-ins' configuration models: unknown keys and coercion refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


#: A string with at least one character.
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]

#: A one-character CSV delimiter other than a quote or a line break.
Delimiter = Annotated[str, StringConstraints(min_length=1, max_length=1, pattern=r'^[^"\r\n]$')]

#: A record file format.
RecordFormat = Literal["json", "jsonl", "csv"]

#: An integer >= 0.
NonNegativeInt = Annotated[int, Field(ge=0)]

#: A finite number > 0 (seconds).
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]

#: A finite number >= 0 (seconds).
NonNegativeSeconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


DELIMITER_DESCRIPTION = "CSV delimiter: one character other than a quote or a line break."
