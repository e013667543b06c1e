"""``json_transform``: JMESPath over the inputs, called as the engine calls it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.base.errors import PluginError, PluginErrorCode
from plugins import PluginContext
from plugins.builtin import data_source_plugin, json_transform_plugin
from tests.helpers.plugin_config import call, names_key

ORDERS = [
    {"id": 1, "name": "ann", "amount": 12.5, "tags": ["new"]},
    {"id": 2, "name": "bob", "amount": 4, "tags": []},
    {"id": 3, "name": "cid", "amount": 30, "tags": ["vip", "new"]},
]


def make_ctx() -> PluginContext:
    return PluginContext(
        execution_id="e",
        workflow_id="w",
        node_id="shape",
        plugin_id="json_transform",
        attempt=1,
        idempotency_key="k",
    )


def run(inputs: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    plugin = json_transform_plugin
    result = plugin.function(inputs, plugin.check_config(config), make_ctx())
    assert isinstance(result, dict)
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    return result


def error(inputs: dict[str, Any], config: dict[str, Any]) -> PluginError:
    """The refusal, by the model or when the plugin runs."""
    with pytest.raises(PluginError) as info:
        call(json_transform_plugin, inputs, config, make_ctx())
    return info.value


def test_mapping_over_upstream_output(tmp_path: Path) -> None:
    # Real data: the output of a data_source node reading a JSON Lines file.
    path = tmp_path / "orders.jsonl"
    path.write_text("".join(json.dumps(order) + "\n" for order in ORDERS), encoding="utf-8")
    loaded = call(data_source_plugin, {}, {"path": str(path)}, make_ctx())
    inputs = {"load": loaded}
    result = run(
        inputs,
        {
            "mapping": {
                "total": "sum(load.records[].amount)",
                "names": "load.records[].name",
                "big": "load.records[?amount > `10`].id",
                "first_vip": "load.records[?contains(tags, 'vip')] | [0].name",
                "count": "load.count",
                "missing": "load.nothing.here",
                "sorted": "sort_by(load.records, &amount)[].name",
            }
        },
    )
    assert result == {
        "total": 46.5,
        "names": ["ann", "bob", "cid"],
        "big": [1, 3],
        "first_vip": "cid",
        "count": 3,
        "missing": None,
        "sorted": ["bob", "ann", "cid"],
    }
    assert list(result) == ["total", "names", "big", "first_vip", "count", "missing", "sorted"]


def test_expression_gives_the_whole_output() -> None:
    inputs = {"order": ORDERS[2]}
    assert run(inputs, {"expression": "{id: order.id, tag_count: length(order.tags)}"}) == {
        "id": 3,
        "tag_count": 2,
    }
    assert run(inputs, {"expression": "order"}) == ORDERS[2]


def test_expression_must_give_an_object() -> None:
    for expression in ("orders[].id", "missing", "`1`"):
        problem = error({"orders": ORDERS}, {"expression": expression})
        assert problem.code is PluginErrorCode.PluginExecutionFailed
        assert "not an object" in problem.message


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "mapping"),
        ({"mapping": {"a": "x"}, "expression": "y"}, "expression"),
        ({"mapping": "x"}, "mapping"),
        ({"mapping": {}}, "mapping"),
        ({"mapping": {"a": 1}}, "mapping.a"),
        ({"mapping": {"total": "sum(orders[].amount"}}, "mapping.total"),
        ({"mapping": {"x": "orders[?"}}, "mapping.x"),
        ({"expression": "{a: }"}, "expression"),
        ({"mapping": {"x": "no_such_function(orders)"}}, "mapping.x"),
        ({"mapping": {"x": "length(orders, orders)"}}, "mapping.x"),
        ({"expression": "(" * 5000 + "a" + ")" * 5000}, "expression"),  # a recursive parser
    ],
)
def test_bad_configuration_names_the_key(config: dict[str, Any], key: str) -> None:
    problem = error({"orders": ORDERS}, config)
    assert problem.code is PluginErrorCode.InvalidConfiguration
    assert names_key(problem.message, key), problem.message


def test_expression_failing_on_the_data_names_the_field() -> None:
    inputs = {"orders": [{"amount": "12"}, {"amount": "x"}]}
    problem = error(inputs, {"mapping": {"ok": "orders[0]", "total": "sum(orders[].amount)"}})
    assert problem.code is PluginErrorCode.PluginExecutionFailed
    assert "'mapping.total'" in problem.message


def test_the_model_refuses_what_the_hand_checks_refuse() -> None:
    for config in ({}, {"mapping": {"a": "x"}, "expression": "y"}, {"mapping": {"a": ""}}):
        with pytest.raises(PluginError) as info:
            json_transform_plugin.check_config(config)
        assert info.value.code is PluginErrorCode.InvalidConfiguration


def test_pure_and_leaves_inputs_alone() -> None:
    inputs = {"orders": [dict(order) for order in ORDERS]}
    config = {"mapping": {"ids": "orders[].id", "orders": "orders"}}
    first = run(inputs, config)
    assert run(inputs, config) == first
    assert inputs == {"orders": ORDERS}
