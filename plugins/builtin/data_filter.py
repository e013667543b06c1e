"""``data_filter``: keep the items a CEL condition holds for.

A stream processor (Streaming calls it once per micro-batch) that works the same in the batch
modes.

Config:
    condition (str, required): A CEL condition evaluated per item with the item's keys as
        variables, e.g. ``"amount > 10 && status == 'ok'"``. Items for which it is true are
        kept, in order. CEL's standard functions are available, plus the strings extension
        (``lowerAscii``, ``upperAscii``, ``trim``, ``replace``, ``split``, ``join``,
        ``indexOf``, ``lastIndexOf``, ``substring``; see :mod:`plugins.builtin._cel`).
        An item lacking a field the condition names is an evaluation error (see
        ``on_error``): the fields are top-level variables, and CEL has no "undefined".
        Evaluation is metered: the condition may spend at most ``MAX_EXPRESSION_COST``
        (100,000) cost units on one item (see :mod:`plugins.builtin._cel`).
    on_error (str): What to do with an item the condition cannot be evaluated on (unknown
        variable, type mismatch, division by zero, a non-boolean result): ``"drop"`` (the
        default) drops it and counts it in ``errors``; ``"fail"`` raises. A condition too
        expensive for an item always fails the call.

Inputs:
    ``inputs["records"]`` if it is a list; otherwise every input that is a list of items
    (Streaming: one per upstream node or port) or an object holding an ``"items"`` or
    ``"records"`` list (an upstream node's output), concatenated in input order.

Output:
    ``items`` (the kept items, unchanged), ``count`` (how many were kept), ``dropped`` (how
    many were not kept, evaluation errors included) and ``errors`` (how many of the dropped
    could not be evaluated). ``count + dropped`` is the number of items received.

Errors:
    A missing or invalid ``condition`` (not valid CEL, too long) or a bad ``on_error`` is
    ``InvalidConfiguration`` naming the key. No items in the inputs, an item that is not an
    object, a condition too expensive for an item, or (with ``on_error: "fail"``) an item
    the condition fails on is ``PluginExecutionFailed`` (not retried); the last two name the
    item's index in the batch.

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
from plugins.builtin._models import CelExpression, PluginConfig
from plugins.builtin._streams import collect_items


class DataFilterConfig(PluginConfig):
    """Configuration of ``data_filter``."""

    condition: CelExpression = Field(
        description="CEL condition per item (its keys are the variables); items it is true "
        "for are kept, e.g. \"amount > 10 && status == 'ok'\"."
    )
    on_error: Literal["drop", "fail"] = Field(
        "drop",
        description="An item the condition cannot be evaluated on: 'drop' it (counted in "
        "'errors') or 'fail' the call.",
    )


class DataFilter(PluginBase):
    """Keep the items a CEL condition is true for (a stream processor)."""

    plugin_id = "data_filter"
    light = True  # a pure transform of its inputs: short, idempotent, no heartbeats
    Config = DataFilterConfig

    def run(
        self, inputs: dict[str, Any], config: DataFilterConfig, ctx: PluginContext
    ) -> dict[str, Any]:
        """Filter the items.

        Args:
            inputs: The node's inputs; items are found as the module documentation says.
            config: ``condition`` and ``on_error``; see the module documentation.
            ctx: The call's context.

        Returns:
            ``{"items": [...], "count": kept, "dropped": d, "errors": e}``.

        Raises:
            PluginError: ``InvalidConfiguration`` naming the bad key, or ``PluginExecutionFailed``
                when there are no items or (``on_error: "fail"``) the condition fails on one.
        """
        condition = _condition(config.condition)
        on_error = config.on_error
        items = collect_items(inputs)

        kept: list[dict[str, Any]] = []
        errors = 0
        first_error: str | None = None
        for index, item in enumerate(items):
            try:
                keep = condition.evaluate_bool(item)
            except ExpressionTooExpensive as exc:
                raise too_expensive("condition", condition, index, exc) from None
            except ExpressionError as exc:
                if on_error == "fail":
                    raise data_error(
                        f"condition {condition.text!r} failed on item {index}: {exc}", index=index
                    ) from None
                errors += 1
                if first_error is None:
                    first_error = f"item {index}: {exc}"
                continue
            if keep:
                kept.append(item)

        dropped = len(items) - len(kept)
        if errors:
            ctx.logger.warning(
                "data_filter.evaluation_errors", errors=errors, first_error=first_error
            )
        ctx.logger.debug("data_filter.done", received=len(items), kept=len(kept))
        return {"items": kept, "count": len(kept), "dropped": dropped, "errors": errors}


data_filter_plugin = DataFilter().as_plugin()


def _condition(text: str) -> Expression:
    try:
        return compile_expression(text)
    except ExpressionError as exc:
        raise config_error("condition", f"{exc}") from None
