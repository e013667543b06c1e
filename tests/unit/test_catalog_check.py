"""The catalog check (engine.temporal.catalog): expressions compiled, every problem reported at
once.

The catalog here is what a worker with the built-ins publishes (``describe_plugins``), the
same JSON Schemas registration reads from the task queue; nothing here imports a plugin to
check a definition.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.conditions import ConditionError, compile_condition
from engine.language.expressions import (
    CEL,
    CEL_CONDITION,
    EXPRESSION_KEYWORD,
    JMESPATH,
    STRINGS_EXTENSION,
    ExpressionField,
    expression_problem,
)
from engine.language.models import PluginWorkflow, WorkflowNode
from engine.temporal.catalog import (
    catalog_problems,
    check_workflow,
    describe_plugins,
    unchecked_nodes,
    validate_with_catalog,
)
from plugins import (
    CelCondition,
    CelExpression,
    JmesPathExpression,
    Plugin,
    PluginContext,
    PluginRegistry,
    plugin,
)
from plugins.builtin import BUILTIN_PLUGINS
from plugins.builtin._cel import _FUNCTIONS, ExpressionError, compile_expression
from tests.helpers.builders import edge, node, workflow
from tests.hostile.corpus import CONDITIONS

Code = PluginErrorCode
CATALOG = {info.plugin_id: info for info in describe_plugins(PluginRegistry.with_builtins())}


def refusal(definition: PluginWorkflow) -> PluginError:
    with pytest.raises(PluginError) as refused:
        validate_with_catalog(definition, CATALOG)
    return refused.value


def one_node(plugin_id: str, **config: Any) -> PluginWorkflow:
    return workflow("exprs", [node("the_node", plugin_id, **config)])


# --- the expression fields are declared ---------------------------------------------------------


def marked_paths(schema: dict[str, Any]) -> dict[str, str]:
    """Configuration paths whose values the schema marks as expressions, with the language
    (``*`` for any key of a mapping)."""
    found: dict[str, str] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if EXPRESSION_KEYWORD in node:
                found[path] = node[EXPRESSION_KEYWORD]
            for key, value in node.items():
                if key == "properties":
                    for name, sub in value.items():
                        walk(sub, f"{path}.{name}" if path else name)
                elif key == "additionalProperties":
                    walk(value, f"{path}.*")
                elif key in ("anyOf", "oneOf", "allOf"):
                    for sub in value:
                        walk(sub, path)

    walk(schema, "")
    return found


def test_every_builtin_expression_field_is_declared() -> None:
    declared = {}
    for item in BUILTIN_PLUGINS:
        if item.config_model is not None:
            for path, language in marked_paths(item.config_model.model_json_schema()).items():
                declared[(item.plugin_id, path)] = language
    assert declared == {
        ("data_filter", "condition"): CEL,
        ("data_transformer", "set.*"): CEL,
        ("data_processor", "filter"): CEL_CONDITION,
        ("json_transform", "mapping.*"): JMESPATH,
        ("json_transform", "expression"): JMESPATH,
    }


def test_the_strings_extension_is_what_the_plugins_add() -> None:
    assert set(_FUNCTIONS) == STRINGS_EXTENSION


# --- each built-in's expressions are compiled, naming node and field ---------------------------


@pytest.mark.parametrize(
    ("plugin_id", "config", "fragment"),
    [
        (
            "data_filter",
            {"condition": "score >= "},
            "condition: 'score >= ' is not valid CEL: syntax error at column 7",
        ),
        (
            "data_filter",
            {"condition": "name.lowerascii() == 'x'"},
            "condition: \"name.lowerascii() == 'x'\" calls 'lowerascii', which is neither a "
            "CEL function nor one of the strings extension",
        ),
        ("data_filter", {"condition": "__import__ == 1"}, "reserved name '__import__'"),
        (
            "data_filter",
            {"condition": "s.matches('(?=a)')"},
            "condition: \"s.matches('(?=a)')\" is refused: matches() pattern '(?=a)' is not "
            "RE2 syntax",
        ),
        ("data_filter", {"condition": "(" * 40 + "a" + ")" * 40}, "nests 40 levels deep"),
        (
            "data_transformer",
            {"set": {"ok": "a + 1", "total": "price *"}},
            "set.total: 'price *' is not valid CEL: syntax error",
        ),
        (
            "data_processor",
            {"filter": "score >= "},
            "filter: 'score >= ' is not valid CEL: syntax error at column 7",
        ),
        (
            "data_processor",
            {"filter": "name.lowerAscii() == 'x'"},
            "calls 'lowerAscii', which is not a CEL function",  # conditions have no extension
        ),
        (
            "data_processor",
            {"filter": "1 + 1"},
            "filter: '1 + 1' has no variables and fails: result is int, not a boolean",
        ),
        (
            "json_transform",
            {"mapping": {"total": "sum(orders[].amount", "n": "length(a)"}},
            "mapping.total: 'sum(orders[].amount' is not valid JMESPath: the expression is "
            "incomplete",
        ),
        (
            "json_transform",
            {"mapping": {"total": "summ(orders[].amount)"}},
            "mapping.total: 'summ(orders[].amount)' calls 'summ', which is not a JMESPath function",
        ),
        (
            "json_transform",
            {"mapping": {"deep": "(" * 5000 + "a" + ")" * 5000}},
            "mapping.deep: '((((",  # the parser is recursive: refused, not a crash
        ),
        (
            "json_transform",
            {"expression": "{n: length(a, b)}"},
            "expression: '{n: length(a, b)}' calls 'length' with 2 argument(s); it takes 1",
        ),
    ],
)
def test_an_expression_that_cannot_compile_is_refused(
    plugin_id: str, config: dict[str, Any], fragment: str
) -> None:
    error = refusal(one_node(plugin_id, **config))
    assert error.code is Code.InvalidWorkflowStructure
    assert f"node 'the_node' (plugin '{plugin_id}') configuration: " in error.message
    assert fragment in error.message
    [entry] = error.details["problems"]
    assert entry["node_id"] == "the_node"
    assert entry["plugin_id"] == plugin_id
    assert error.details["node_id"] == "the_node"  # one problem: named at the top too


@pytest.mark.parametrize(
    ("plugin_id", "config"),
    [
        ("data_filter", {"condition": "name.lowerAscii().startsWith('a') && size(tags) > 0"}),
        ("data_filter", {"condition": "items.exists(i, i.matches('^[a-z]+$'))"}),
        ("data_transformer", {"set": {"t": "double(q) * 1.5", "n": "name.substring(0, 2)"}}),
        ("data_processor", {"filter": "int(age) >= 30 && country == 'NL'"}),
        ("json_transform", {"mapping": {"names": "orders[].name", "m": "merge(a, b, c)"}}),
        ("json_transform", {"expression": "{id: order.id, n: length(order.items)}"}),
    ],
)
def test_good_expressions_are_accepted(plugin_id: str, config: dict[str, Any]) -> None:
    validate_with_catalog(one_node(plugin_id, **config), CATALOG)


@pytest.mark.parametrize(
    ("plugin_id", "config", "run_time_reason"),
    [
        ("data_filter", {"condition": "score >= "}, "is not valid CEL: syntax error at column 7"),
        (
            "data_transformer",
            {"set": {"s": "score >= "}},
            "is not valid CEL: syntax error at column 7",
        ),
        # engine.language.conditions' message, which names no column.
        ("data_processor", {"filter": "score >= "}, "not valid CEL: score >="),
    ],
)
def test_what_registration_refuses_fails_the_plugin_at_run_time(
    plugin_id: str, config: dict[str, Any], run_time_reason: str
) -> None:
    """One compiler: what registration refuses is what the node would fail with."""
    item = PluginRegistry.with_builtins().get(plugin_id)
    assert item is not None
    at_registration = refusal(one_node(plugin_id, **config)).message
    assert "is not valid CEL: syntax error at column 7" in at_registration
    context = PluginContext(
        execution_id="e",
        workflow_id="w",
        node_id="n",
        plugin_id=plugin_id,
        attempt=1,
        idempotency_key="k",
    )
    with pytest.raises(PluginError) as at_run_time:
        item.function({"records": [{"score": 1}]}, item.check_config(config), context)
    assert at_run_time.value.code is Code.InvalidConfiguration
    assert run_time_reason in at_run_time.value.message


# --- registration never accepts what run time cannot compile ------------------------------------

TEXTS = [case.text for case in CONDITIONS if isinstance(case.text, str)] + [
    "score >= ",
    "a.lowerAscii() == 'x'",
    "[1, 2].map(x, x * 2)",
    "x\n > ",
    "'unterminated",
    "a ? b",
    "{'a': 1}['a']",
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_accepted_expressions_compile_at_run_time(text: str) -> None:
    if expression_problem(CEL, text) is None:
        compile_expression(text)  # what data_filter and data_transformer run
    else:
        with pytest.raises(PluginError):
            validate_with_catalog(one_node("data_filter", condition=text), CATALOG)
    if expression_problem(CEL_CONDITION, text) is None:
        compile_condition(text)  # what data_processor runs
    try:
        compile_expression(text)
    except ExpressionError:
        assert expression_problem(CEL, text) is not None
    try:
        compile_condition(text)
    except ConditionError:
        assert expression_problem(CEL_CONDITION, text) is not None


def test_values_that_are_not_strings_are_left_to_the_schema() -> None:
    assert expression_problem(CEL, 5) is None
    error = refusal(one_node("data_transformer", set={"a": 1}))
    assert "set.a: 1 is not of type 'string'" in error.message
    assert expression_problem("a-language-of-a-newer-worker", "(((") is None


# --- every problem at once ------------------------------------------------------------------


def test_every_node_is_reported_with_the_structure() -> None:
    definition = workflow(
        "many",
        [
            node("load", "data_source", records=[{"score": 1}]),
            node("keep", "data_filter", condition="score >= "),
            node("shape", "data_processor", filtr="score > 1"),
            node("call", "no_such_plugin"),
            node("fine", "data_transformer", set={"double": "score * 2"}),
        ],
        [edge("load", "keep"), edge("keep", "ghost"), edge("keep", "keep")],
    )
    error = refusal(definition)
    problems = error.details["problems"]
    assert [(p["code"], p.get("node_id")) for p in problems] == [
        ("NodeNotFound", None),
        ("CircularDependency", None),
        ("InvalidWorkflowStructure", "keep"),
        ("InvalidWorkflowStructure", "shape"),
        ("PluginNotFound", "call"),
    ]
    assert error.code is Code.NodeNotFound  # the first problem's
    assert error.message.startswith("workflow 'many' has 5 problems: ")
    assert "did you mean 'filter'?" in problems[3]["message"]
    assert "node 'call' uses plugin 'no_such_plugin', which no worker" in problems[4]["message"]
    # Several problems: no single node is named at the top.
    assert "node_id" not in error.details


def test_check_workflow_reports_every_node() -> None:
    definition = workflow(
        "nodes", [node("a", "nope"), node("b", "data_filter"), node("c", "data_filter")]
    )
    with pytest.raises(PluginError) as refused:
        check_workflow(definition, CATALOG)
    assert refused.value.code is Code.PluginNotFound
    assert [p["node_id"] for p in refused.value.details["problems"]] == ["a", "b", "c"]
    assert len(catalog_problems(definition, CATALOG)) == 3


def test_several_problems_of_one_node_are_one_problem_naming_each_field() -> None:
    error = refusal(
        one_node("data_transformer", set={"a": "x +", "b": "y *"}, drop="a", sets={"c": "1"})
    )
    [entry] = error.details["problems"]
    message = entry["message"]
    for fragment in ("set.a: 'x +'", "set.b: 'y *'", "drop: 'a' is not of type 'array'", "sets"):
        assert fragment in message


def test_values_that_are_not_json_are_reported_before_any_plugin_check() -> None:
    definition = one_node("data_filter", condition="score >= ", bad=float("nan"))
    error = refusal(definition)
    assert [p["code"] for p in error.details["problems"]] == ["InvalidWorkflowStructure"]
    assert "configuration.bad is nan, which is not a JSON number" in error.message


def test_an_oversize_definition_is_not_checked_against_the_catalog() -> None:
    """Compiling every node's expressions costs time: only definitions within the size
    limits get that far (the size problem is reported alone)."""
    definition = workflow(
        "big",
        [
            node("load", "data_source", records=[{"text": "x" * 1_300_000}]),
            node("keep", "data_filter", condition="score >= "),
            node("send", "no_such_plugin"),
        ],
    )
    error = refusal(definition)
    [entry] = error.details["problems"]
    assert "bytes of JSON; the limit is 1,200,000" in entry["message"]


def test_without_a_catalog_only_structure_is_checked() -> None:
    validate_with_catalog(one_node("anything", condition="score >= "), {})
    validate_with_catalog(one_node("anything", condition="score >= "), None)


# --- plugins outside this repository ------------------------------------------------------------


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: CelCondition
    then: dict[str, CelExpression]


class ThirdPartyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule]
    pick: JmesPathExpression | None = None


def third_party(inputs: dict[str, Any], config: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {}


def test_a_third_party_model_uses_the_same_annotations() -> None:
    registry = PluginRegistry([plugin("rules", config=ThirdPartyConfig)(third_party)])
    catalog = {info.plugin_id: info for info in describe_plugins(registry)}
    json.dumps(catalog["rules"].config_schema)  # publishable
    good = {"rules": [{"when": "a > 1", "then": {"b": "a * 2"}}], "pick": "a.b"}
    validate_with_catalog(one_node("rules", **good), catalog)

    bad = {"rules": [good["rules"][0], {"when": "a >", "then": {"b": "a *"}}], "pick": "a["}
    with pytest.raises(PluginError) as refused:
        validate_with_catalog(one_node("rules", **bad), catalog)
    message = refused.value.message
    assert "pick: 'a[' is not valid JMESPath" in message
    assert "rules.1.when: 'a >' is not valid CEL" in message
    assert "rules.1.then.b: 'a *' is not valid CEL" in message
    assert "rules.0" not in message


def test_the_marker_is_plain_json_schema() -> None:
    class Config(BaseModel):
        text: CelExpression

    schema = Config.model_json_schema()["properties"]["text"]
    assert schema == {"minLength": 1, "title": "Text", "type": "string", EXPRESSION_KEYWORD: CEL}
    assert ExpressionField(CEL) == ExpressionField("cel")


def test_plugins_without_a_schema_are_named_as_unchecked() -> None:
    registry = PluginRegistry([Plugin("bare", third_party)])
    catalog = {info.plugin_id: info for info in describe_plugins(registry)}
    definition = workflow("bare", [node("a", "bare", anything="goes")])
    validate_with_catalog(definition, catalog)
    assert unchecked_nodes(definition, catalog) == ["a (bare)"]
    assert unchecked_nodes(one_node("data_filter", condition="a"), CATALOG) == []


def test_an_engine_node_is_not_looked_up_in_the_catalog() -> None:
    definition = workflow("engine", [WorkflowNode(node_id="w", plugin_id="wait")])
    assert catalog_problems(definition, CATALOG) == []
