"""``data_transformer``: compute, drop and rename item fields with CEL expressions.

A stream processor (Streaming calls it once per micro-batch) that works the same in the batch
modes. At least one of ``set``, ``drop`` and ``rename`` should be given; with none, items pass
through unchanged.

Config (applied in this order):
    set (object): Map of field name to a CEL expression evaluated per item with the item's
        keys as variables; the result is stored in the field (added, or replacing the old
        value), e.g. ``{"total": "price * quantity", "name": "name.upperAscii()"}``. Every
        expression sees the item as it came in (assignments are simultaneous, so one
        expression never sees another's result). Results are converted to plain JSON:
        int, double, string, bool, null, lists and maps (map keys become strings); bytes
        become base64 text, timestamps RFC 3339 text, durations like ``"1.5s"``.
        Expressions may use CEL's standard functions (``size``, ``int``, ``double``,
        ``string``, ``matches``, ``startsWith``, ..., the conditional ``a ? b : c``) and the
        strings extension (``lowerAscii``, ``upperAscii``, ``trim``, ``replace``, ``split``,
        ``join``, ``indexOf``, ``lastIndexOf``, ``substring``; see
        :mod:`plugins.builtin._cel`). Note CEL does not mix int and double in arithmetic
        (``double(quantity) * 1.5``). Evaluation is metered: each expression may spend at
        most ``MAX_EXPRESSION_COST`` (100,000) cost units on one item.
    drop (list of str): Remove these fields (fields an item lacks are ignored).
    rename (object): Map of old field name to new; field order is kept.
    on_error (str): What to do when an expression cannot be evaluated on an item:
        ``"fail"`` (the default) raises naming the item's index and the field; ``"drop"``
        drops the item and counts it in ``errors``. An expression too expensive for an item
        always fails the call.

Inputs:
    ``inputs["records"]`` if it is a list; otherwise every input that is a list of items
    (Streaming: one per upstream node or port) or an object holding an ``"items"`` or
    ``"records"`` list (an upstream node's output), concatenated in input order.

Output:
    ``items`` (the transformed items, in order), ``count`` (how many), ``errors`` (items
    dropped because an expression failed on them; 0 unless ``on_error`` is ``"drop"``).

Errors:
    Bad configuration (an expression that is not valid CEL, a non-string field name) is
    ``InvalidConfiguration`` naming the key. No items in the inputs, an item that is not an
    object, an expression too expensive for an item, or an expression failing on an item
    (``on_error: "fail"``) is ``PluginExecutionFailed`` (not retried).

Pure function of its inputs: replaying a batch gives the same output.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from plugins._context import PluginContext
from plugins._plugin import PluginBase
from plugins.builtin._cel import (
    Expression,
    ExpressionError,
    ExpressionTooExpensive,
    compile_expression,
    too_expensive,
)
from plugins.builtin._common import config_error, data_error
from plugins.builtin._models import CelExpression, NonEmptyStr, PluginConfig
from plugins.builtin._streams import collect_items


class DataTransformerConfig(PluginConfig):
    """Configuration of ``data_transformer`` (applied in the order of the fields)."""

    set: dict[NonEmptyStr, CelExpression] | None = Field(
        None,
        description="Map of field name to a CEL expression over the item's fields, e.g. "
        '{"total": "price * quantity"}.',
    )
    drop: list[NonEmptyStr] | None = Field(None, description="Remove these fields.")
    rename: dict[str, NonEmptyStr] | None = Field(None, description="Map of old field name to new.")
    on_error: Literal["fail", "drop"] = Field(
        "fail",
        description="An expression that cannot be evaluated on an item: 'fail' the call or "
        "'drop' the item (counted in 'errors').",
    )


class DataTransformer(PluginBase):
    """Set fields from CEL expressions, drop and rename fields (a stream processor)."""

    plugin_id = "data_transformer"
    light = True  # a pure transform of its inputs: short, idempotent, no heartbeats
    Config = DataTransformerConfig

    def run(
        self, inputs: dict[str, Any], config: DataTransformerConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Transform the items.

        Args:
            inputs: The node's inputs; items are found as the module documentation says.
            config: ``set``, ``drop``, ``rename``, ``on_error``; see the module documentation.
            ctx: The call's context.

        Returns:
            ``{"items": [...], "count": n, "errors": e}``.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key, or ``PluginExecutionFailed``
                when there are no items or an expression fails on one.
        """
        assignments = _assignments(config.set or {})
        drop = config.drop or []
        rename = config.rename or {}
        on_error = config.on_error
        items = collect_items(inputs)

        out: list[dict[str, Any]] = []
        errors = 0
        first_error: str | None = None
        for index, item in enumerate(items):
            try:
                computed = {field: expr.evaluate(item) for field, expr in assignments}
            except _TooExpensive as exc:
                raise too_expensive(f"set.{exc.field}", exc.expression, index, exc.error) from None
            except _FieldError as exc:
                message = f"'set.{exc.field}' ({exc.text!r}) failed on item {index}: {exc.reason}"
                if on_error == "fail":
                    raise data_error(message, index=index, field=exc.field) from None
                errors += 1
                first_error = first_error or message
                continue
            result = dict(item)
            result.update(computed)
            for field in drop:
                result.pop(field, None)
            if rename:
                result = {rename.get(key, key): value for key, value in result.items()}
            out.append(result)

        if errors:
            ctx.logger.warning(
                "data_transformer.evaluation_errors", errors=errors, first_error=first_error
            )
        ctx.logger.debug("data_transformer.done", received=len(items), count=len(out))
        return {"items": out, "count": len(out), "errors": errors}


data_transformer_plugin = DataTransformer().as_plugin()


class _FieldError(Exception):
    def __init__(self, field: str, text: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.text = text
        self.reason = reason


class _TooExpensive(Exception):
    def __init__(self, field: str, expression: Expression, error: ExpressionTooExpensive) -> None:
        super().__init__(str(error))
        self.field = field
        self.expression = expression
        self.error = error


class _Assignment:
    """One ``set`` entry; evaluating it reports which field failed."""

    def __init__(self, field: str, expression: Expression) -> None:
        self.field = field
        self.expression = expression

    def evaluate(self, item: dict[str, Any]) -> Any:
        try:
            return self.expression.evaluate(item)
        except ExpressionTooExpensive as exc:
            raise _TooExpensive(self.field, self.expression, exc) from None
        except ExpressionError as exc:
            raise _FieldError(self.field, self.expression.text, str(exc)) from None


def _assignments(expressions: dict[str, str]) -> list[tuple[str, _Assignment]]:
    assignments: list[tuple[str, _Assignment]] = []
    for field, text in expressions.items():
        try:
            expression = compile_expression(text)
        except ExpressionError as exc:
            raise config_error(f"set.{field}", f"{exc}") from None
        assignments.append((field, _Assignment(field, expression)))
    return assignments
