"""Hostile CEL inside plugins (``data_filter``, ``data_transformer``, ``data_processor``).

They evaluate per item in an activity's thread, which nothing can interrupt: before the
meter, three nested macros over a 60-element list ran for about a minute of CPU. Now every
evaluation is metered as connection conditions are, with a budget per item, and running out
fails the call (whatever ``on_error`` says) with a non-retryable error naming the key, the
expression and the budget, within a CPU and a memory budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.conditions import MAX_CONDITION_COST
from plugins import Plugin, PluginContext
from plugins.builtin import data_filter_plugin, data_processor_plugin, data_transformer_plugin
from plugins.builtin._cel import MAX_EXPRESSION_COST, compile_expression
from tests.hostile.budget import PEAK_BYTES, measure

# MAX_EXPRESSION_COST is about 0.5 s of CPU unloaded; the margin absorbs a loaded CI box.
PLUGIN_EVALUATION_CPU_SECONDS = 3.0
SIXTY = list(range(60))
LONG_TEXT = "a" * 200_000


@dataclass(frozen=True)
class Case:
    """A hostile expression in one plugin's configuration, and what the error must say."""

    id: str
    plugin: Plugin
    config: dict[str, Any]
    items: list[dict[str, Any]]
    key: str
    text: str


CASES = [
    Case(
        "filter-nested-comprehensions",
        data_filter_plugin,
        {"condition": "xs.all(a, xs.all(b, xs.all(c, a + b + c >= 0)))"},
        [{"xs": SIXTY}],
        "condition",
        "xs.all(a, xs.all(b, xs.all(c, a + b + c >= 0)))",
    ),
    Case(
        "transformer-nested-maps",
        data_transformer_plugin,
        {"set": {"cube": "xs.map(a, xs.map(b, xs.map(c, a * b * c)))"}, "on_error": "drop"},
        [{"xs": SIXTY}],
        "set.cube",
        "xs.map(a, xs.map(b, xs.map(c, a * b * c)))",
    ),
    Case(
        "filter-concatenation-bomb",
        data_filter_plugin,
        {"condition": "xs.map(i, xs + xs + xs + xs).size() > 0"},
        [{"xs": list(range(2000))}],
        "condition",
        "xs.map(i, xs + xs + xs + xs).size() > 0",
    ),
    Case(
        # "" matches between every character: 200,001 insertions of 1,000 characters would
        # build a 200 MB string. Priced before the call, it is never built.
        "transformer-replace-bomb",
        data_transformer_plugin,
        {"set": {"t": "s.replace('', pad)"}},
        [{"s": LONG_TEXT, "pad": "b" * 1000}],
        "set.t",
        "s.replace('', pad)",
    ),
    Case(
        "filter-split-into-characters",
        data_filter_plugin,
        {"condition": "size(s.split('')) > 0", "on_error": "drop"},
        [{"s": LONG_TEXT}],
        "condition",
        "size(s.split('')) > 0",
    ),
]


def make_ctx() -> PluginContext:
    return PluginContext(
        execution_id="e",
        workflow_id="w",
        node_id="n",
        plugin_id="p",
        attempt=1,
        idempotency_key="k",
    )


def call(plugin: Plugin, items: list[dict[str, Any]], config: dict[str, Any]) -> Any:
    return plugin.function({"records": items}, plugin.check_config(config), make_ctx())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_plugin_expression_fails_fast_naming_the_budget(case: Case) -> None:
    measured = measure(lambda: call(case.plugin, case.items, case.config))
    error = measured.error
    assert isinstance(error, PluginError), f"not refused: {error!r} {measured.result!r}"
    assert error.code is PluginErrorCode.PluginExecutionFailed  # terminal: never retried
    assert f"'{case.key}' ({case.text!r}) is too expensive" in error.message, error.message
    assert f"{MAX_EXPRESSION_COST:,} cost units" in error.message
    assert "on item 0" in error.message
    assert error.details == {"index": 0, "key": case.key, "budget": MAX_EXPRESSION_COST}
    assert measured.cpu < PLUGIN_EVALUATION_CPU_SECONDS, f"{measured.cpu:.3f} s of CPU"
    assert measured.peak < PEAK_BYTES, f"{measured.peak / 1e6:.1f} MB at peak"


def test_the_budget_is_per_item_and_the_error_names_the_item() -> None:
    # Cheap items pass; the first item too expensive stops the call, naming it.
    items = [{"xs": [1]}, {"xs": [2]}, {"xs": SIXTY}, {"xs": SIXTY}]
    config = {"condition": "xs.all(a, xs.all(b, xs.all(c, a + b + c >= 0)))"}
    with pytest.raises(PluginError) as info:
        call(data_filter_plugin, items, config)
    assert "on item 2" in info.value.message
    assert info.value.details["index"] == 2


def test_data_processor_filter_is_metered_as_a_connection_condition() -> None:
    # data_processor's filter is a connection condition (engine.language.conditions), with its
    # budget.
    config = {"filter": "xs.all(a, xs.all(b, xs.all(c, a + b + c >= 0)))"}
    measured = measure(lambda: call(data_processor_plugin, [{"xs": SIXTY}], config))
    error = measured.error
    assert isinstance(error, PluginError), error
    assert error.code is PluginErrorCode.PluginExecutionFailed
    assert f"filter {config['filter']!r} failed on record 0" in error.message
    assert f"more than {MAX_CONDITION_COST:,} evaluation steps" in error.message
    assert measured.cpu < PLUGIN_EVALUATION_CPU_SECONDS, f"{measured.cpu:.3f} s of CPU"
    assert measured.peak < PEAK_BYTES, f"{measured.peak / 1e6:.1f} MB at peak"


def test_ordinary_work_fits_the_budget() -> None:
    """Macros over a few thousand elements, string functions over long text: not refused."""
    items = [{"xs": list(range(2000)), "s": LONG_TEXT, "words": ["a"] * 3000}]
    kept = call(
        data_filter_plugin,
        items,
        {"condition": "xs.exists(x, x == 1999) && s.upperAscii().startsWith('AAA')"},
    )
    assert kept["count"] == 1
    out = call(
        data_transformer_plugin,
        items,
        {
            "set": {
                "evens": "size(xs.filter(x, x % 2 == 0))",
                "text": "size(words.join(' ').replace('a', 'bc'))",
            },
            "drop": ["xs", "s", "words"],
        },
    )
    assert out["items"] == [{"evens": 1000, "text": 8999}]


def test_compiled_expressions_are_cached() -> None:
    """A Streaming run calls the processors once per micro-batch: the same texts are
    compiled once, not per call and never per item."""
    text = "amount > 10 && status == 'ok'"
    assert compile_expression(text) is compile_expression(text)
