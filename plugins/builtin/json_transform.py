"""``json_transform``: reshape the inputs with JMESPath expressions.

JMESPath (https://jmespath.org) is a query language for JSON: paths (``order.id``),
projections (``orders[].name``), filters (``orders[?amount > `10`]``), multi-selects
(``{id: id, total: sum(items[].price)}``) and functions (``sum``, ``length``, ``sort_by``,
``join``, ``max_by``, ...). It only reads its input: evaluating an expression runs no code,
so definitions can carry expressions safely. Expressions are compiled once per call.

Config (exactly one of):
    mapping (object): Map of output field to a JMESPath expression evaluated against the
        inputs object, e.g. ``{"total": "sum(orders[].amount)", "names": "orders[].name"}``.
        The output has these fields, in this order. An expression that matches nothing
        gives null (JMESPath's rule for missing keys).
    expression (str): One JMESPath expression whose result, which must be a JSON object,
        is the whole output, e.g. ``"{id: order.id, count: length(order.items)}"``.

Inputs:
    The whole inputs object is the expressions' data: each upstream node's output under its
    node id (or port name), plus the execution's inputs for a start node.

Output:
    The mapped object (``mapping``), or the expression's object (``expression``).

Errors:
    Neither or both of ``mapping`` and ``expression``, or an expression that is not valid
    JMESPath, is ``InvalidConfiguration`` naming the key (``mapping.<field>`` for a mapping
    entry); so is an unknown function or a wrong number of arguments, which JMESPath finds
    when the expression is first evaluated. An expression that fails on the data (e.g.
    ``sum`` of strings: a JMESPath type error) or an ``expression`` whose result is not an
    object is ``PluginExecutionFailed`` naming the field.

Pure function of its inputs: the same inputs give the same output.
"""

from __future__ import annotations

from typing import Any

import jmespath  # type: ignore[import-untyped]
import jmespath.exceptions  # type: ignore[import-untyped]
from pydantic import ConfigDict, Field, model_validator

from plugins._context import PluginContext
from plugins._plugin import PluginBase
from plugins.builtin._common import config_error, data_error, json_type
from plugins.builtin._models import JmesPathExpression, NonEmptyStr, PluginConfig


class JsonTransformConfig(PluginConfig):
    """Configuration of ``json_transform`` (exactly one of ``mapping`` and ``expression``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["mapping"], "properties": {"mapping": {"type": "object"}}},
                {"required": ["expression"], "properties": {"expression": {"type": "string"}}},
            ]
        }
    )

    mapping: dict[NonEmptyStr, JmesPathExpression] | None = Field(
        None,
        description='Map of output field to a JMESPath expression, e.g. {"total": '
        '"sum(orders[].amount)"}.',
    )
    expression: JmesPathExpression | None = Field(
        None, description="One JMESPath expression whose result (an object) is the output."
    )

    @model_validator(mode="after")
    def _checks(self) -> JsonTransformConfig:
        if (self.mapping is None) == (self.expression is None):
            raise ValueError("give exactly one of 'mapping' and 'expression'")
        # What the JSON Schema cannot say: config_error passes through pydantic.
        if self.mapping is not None:
            if not self.mapping:
                raise config_error(
                    "mapping",
                    f"must be a non-empty object of output fields to JMESPath, got "
                    f"{json_type(self.mapping)}",
                )
            for field, text in self.mapping.items():
                if not text.strip():
                    raise config_error(
                        f"mapping.{field}", f"must be a JMESPath expression, got {json_type(text)}"
                    )
        return self


class JsonTransform(PluginBase):
    """Reshape the inputs with JMESPath: a mapping of fields, or one object expression."""

    plugin_id = "json_transform"
    light = True  # a pure transform of its inputs: short, idempotent, no heartbeats
    Config = JsonTransformConfig

    def run(
        self, inputs: dict[str, Any], config: JsonTransformConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Reshape the inputs.

        Args:
            inputs: The expressions' data.
            config: ``mapping`` or ``expression``; see the module documentation.
            ctx: The call's context.

        Returns:
            The mapped object.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key, or
                ``PluginExecutionFailed`` naming the field whose expression failed.
        """
        mapping, single = config.mapping, config.expression
        if single is not None:
            compiled = _compile("expression", single)
            result = _evaluate("expression", single, compiled, inputs)
            if not isinstance(result, dict):
                raise data_error(
                    f"'expression' ({single!r}) gave {json_type(result)}, not an object",
                    field="expression",
                )
            ctx.logger.debug("json_transform.done", fields=len(result))
            return result

        assert mapping is not None
        compiled_fields = [
            (field, text, _compile(f"mapping.{field}", text)) for field, text in mapping.items()
        ]
        output = {
            field: _evaluate(f"mapping.{field}", text, compiled, inputs)
            for field, text, compiled in compiled_fields
        }
        ctx.logger.debug("json_transform.done", fields=len(output))
        return output


json_transform_plugin = JsonTransform().as_plugin()


def _compile(key: str, text: str) -> Any:
    try:
        return jmespath.compile(text)
    except jmespath.exceptions.JMESPathError as exc:
        reason = " ".join(str(exc).split())
        raise config_error(key, f"is not valid JMESPath ({text!r}): {reason}") from None
    except RecursionError:  # the parser is recursive: a non-retryable refusal, not a crash
        raise config_error(key, "nests too deeply to parse") from None


def _evaluate(key: str, text: str, compiled: Any, data: dict[str, Any]) -> Any:
    try:
        return compiled.search(data)
    except (
        jmespath.exceptions.UnknownFunctionError,
        jmespath.exceptions.ArityError,
    ) as exc:  # found only when evaluating, but a mistake in the expression, not the data
        reason = " ".join(str(exc).split())
        raise config_error(key, f"is not valid JMESPath ({text!r}): {reason}") from None
    except jmespath.exceptions.JMESPathError as exc:
        reason = " ".join(str(exc).split())
        raise data_error(f"'{key}' ({text!r}) failed on the inputs: {reason}", field=key) from None
