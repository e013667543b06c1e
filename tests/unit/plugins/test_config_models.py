"""The built-ins' configuration models: present, published as JSON Schema, and refusing bad
configurations both at run time (the model) and at registration (the schema in the catalog).

Each bad configuration below is checked three ways: the pydantic model refuses it, the
catalog check at registration (``engine.temporal.catalog.check_workflow`` against the published JSON
Schema) refuses it naming node and field, and, for function plugins, the engine's run-time
check (``Plugin.check_config``) refuses it too unless the problem is an unknown key (run
time ignores keys a model does not declare: they may be workflow-wide settings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError

from engine.base.errors import PluginError, PluginErrorCode
from engine.language.models import (
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowNode,
    WorkflowNodeType,
)
from engine.temporal.catalog import check_workflow, describe_plugins
from plugins import Plugin, PluginRegistry, SourceSpec
from plugins import plugin as plugin_function
from plugins.builtin import BUILTIN_PLUGINS

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
REGISTRY = PluginRegistry.with_builtins()
CATALOG = {info.plugin_id: info for info in describe_plugins(REGISTRY)}


def model_of(plugin_id: str, kind: str) -> type[BaseModel]:
    item = REGISTRY.get(plugin_id) if kind == "function" else REGISTRY.get_source(plugin_id)
    assert item is not None
    assert item.config_model is not None
    return item.config_model


def registration_error(plugin_id: str, kind: str, config: dict[str, Any]) -> PluginError | None:
    """What registering a one-node workflow using ``config`` says (None: accepted)."""
    source = kind == "source"
    definition = PluginWorkflow(
        workflow_id="models",
        execution_mode=WorkflowExecutionMode.Streaming
        if source
        else WorkflowExecutionMode.Sequential,
        nodes=[
            WorkflowNode(
                node_id="the_node",
                plugin_id=plugin_id,
                node_type=WorkflowNodeType.Source if source else WorkflowNodeType.Processor,
                configuration=config,
            )
        ],
    )
    try:
        check_workflow(definition, CATALOG)
    except PluginError as exc:
        return exc
    return None


# --- every built-in has a model --------------------------------------------------------------


@pytest.mark.parametrize("item", BUILTIN_PLUGINS, ids=lambda item: f"{item.plugin_id}")
def test_every_builtin_has_a_documented_strict_model(item: Plugin | SourceSpec) -> None:
    model = item.config_model
    assert model is not None, f"{item.plugin_id} has no configuration model"
    assert model.model_config.get("extra") == "forbid"
    assert model.model_config.get("strict") is True
    schema = model.model_json_schema()
    json.dumps(schema)  # plain JSON, publishable in the catalog
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert schema["properties"], f"{item.plugin_id} declares no fields"
    for name, field in schema["properties"].items():
        assert field.get("description"), f"{item.plugin_id}.{name} has no description"


def test_the_catalog_publishes_every_schema() -> None:
    for item in BUILTIN_PLUGINS:
        info = CATALOG[item.plugin_id]
        schema = info.config_schema if isinstance(item, Plugin) else info.source_config_schema
        assert schema == item.config_model.model_json_schema()  # type: ignore[union-attr]
    # The function and the source named data_source share one model.
    assert CATALOG["data_source"].config_schema == CATALOG["data_source"].source_config_schema


@pytest.mark.parametrize(
    "name", ["quickstart.json", "event_driven_files.json", "streaming_pipeline.json"]
)
def test_the_shipped_examples_pass_the_catalog_check(name: str) -> None:
    definition = PluginWorkflow.from_json(json.loads((EXAMPLES / name).read_text()))
    check_workflow(definition, CATALOG)


# --- good configurations -----------------------------------------------------------------------

GOOD: list[tuple[str, str, dict[str, Any]]] = [
    ("data_source", "function", {}),
    ("data_source", "function", {"path": "in.csv", "format": "csv", "delimiter": ";", "limit": 0}),
    ("data_source", "source", {"records": [{"a": 1}], "limit": None}),
    ("data_processor", "function", {"filter": "age > 3", "select": ["a"], "descending": True}),
    ("data_sink", "function", {"path": "out.json", "format": "json"}),
    ("data_sink", "function", {}),  # writes under the data directory's outputs
    ("file_validator", "function", {"extensions": [], "max_bytes": 10, "min_rows": 1}),
    ("csv_processor", "function", {"output_dir": "out", "delimiter": "\t"}),
    ("error_handler", "function", {"report_dir": "r", "quarantine_dir": "q", "reason": "x"}),
    ("data_filter", "function", {"condition": "a > 1", "on_error": "fail"}),
    ("data_transformer", "function", {"set": {"b": "a * 2"}, "drop": ["c"], "rename": {"a": "z"}}),
    ("database_writer", "function", {"table": "t", "key": "id"}),
    ("database_writer", "function", {"url": "sqlite://", "table": "t", "key": ["a", "b"]}),
    ("http_request", "function", {"url": "https://example.org/api?x=1"}),
    (
        "http_request",
        "function",
        {
            "url": "http://127.0.0.1:8080/orders",
            "method": "POST",
            "headers": {"X-Token": "t"},
            "query": {"page": 2, "tags": ["a", "b"], "all": True},
            "json": {"a": [1, 2]},
            "request_timeout": 1,
            "retries": 0,
            "retry_backoff": 0,
            "expect_status": [200, 201],
            "max_response_bytes": 10,
            "follow_redirects": False,
        },
    ),
    ("http_request", "function", {"url": "http://h/", "body_from_input": "upstream"}),
    ("json_transform", "function", {"mapping": {"total": "sum(orders[].amount)"}}),
    ("json_transform", "function", {"expression": "{id: order.id}"}),
    (
        "file_system_monitor",
        "source",
        {"watch_path": "in", "poll_interval": 1, "settle_seconds": 0},
    ),
    ("jsonl_source", "source", {"path": "data", "follow": True, "poll_interval": 0.1}),
    ("mqtt_subscriber", "source", {"topics": ["a/#"], "qos": 0, "username": "u", "password": "p"}),
    ("redis_stream_source", "source", {"stream": "s", "start_id": "$", "stop_when_empty": True}),
    ("nats_jetstream_source", "source", {"stream": "s", "subject": "a.>", "servers": "nats://h:1"}),
    ("kafka_consumer", "source", {"topics": ["orders.v1"]}),
    (
        "kafka_consumer",
        "source",
        {
            "topics": ["a", "b-c_d"],
            "bootstrap_servers": ["k1:9092", "k2:9092"],
            "group_id": "g",
            "auto_offset_reset": "latest",
            "connect_timeout": 2.5,
        },
    ),
]


@pytest.mark.parametrize(("plugin_id", "kind", "config"), GOOD)
def test_good_configurations_are_accepted(
    plugin_id: str, kind: str, config: dict[str, Any]
) -> None:
    model_of(plugin_id, kind).model_validate(config)
    assert registration_error(plugin_id, kind, config) is None
    # Reserved engine keys are the engine's: neither check sees them.
    assert registration_error(plugin_id, kind, {**config, "retry": {"max_attempts": 2}}) is None


# --- bad configurations ------------------------------------------------------------------------

# (plugin id, kind, configuration, the field the refusal must name or None)
BAD: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("data_source", "function", {"pathh": "in.json"}, "pathh"),
    ("data_source", "function", {"limit": -1}, "limit"),
    ("data_source", "function", {"limit": "5"}, "limit"),
    ("data_source", "function", {"format": "xml"}, "format"),
    ("data_source", "function", {"records": [1, 2]}, "records"),
    ("data_source", "source", {"delimiter": ";;"}, "delimiter"),
    ("data_processor", "function", {"filtr": "a > 1"}, "filtr"),
    ("data_processor", "function", {"descending": "yes"}, "descending"),
    ("data_processor", "function", {"select": "name"}, "select"),
    ("data_processor", "function", {"limit": 1.5}, "limit"),
    ("data_sink", "function", {"path": "o.json", "format": "xml"}, "format"),
    ("data_sink", "function", {"path": 3}, "path"),
    ("data_sink", "function", {"path": "o.csv", "delimiter": '"'}, "delimiter"),
    ("file_validator", "function", {"max_bytes": -1}, "max_bytes"),
    ("file_validator", "function", {"extensions": ".csv"}, "extensions"),
    ("file_validator", "function", {"min_rows": True}, "min_rows"),
    ("file_validator", "function", {"requred_columns": ["a"]}, "requred_columns"),
    ("csv_processor", "function", {"output_dir": ""}, "output_dir"),
    ("csv_processor", "function", {"delimiter": "\n"}, "delimiter"),
    ("csv_processor", "function", {"outdir": "x"}, "outdir"),
    ("error_handler", "function", {}, "report_dir"),
    ("error_handler", "function", {"report_dir": "r", "quarantine": "q"}, "quarantine"),
    ("error_handler", "function", {"report_dir": 5}, "report_dir"),
    ("data_filter", "function", {}, "condition"),
    ("data_filter", "function", {"condition": "a", "on_error": "skip"}, "on_error"),
    ("data_filter", "function", {"condition": ""}, "condition"),
    ("data_transformer", "function", {"set": {"a": 1}}, "set"),
    ("data_transformer", "function", {"on_error": "ignore"}, "on_error"),
    ("data_transformer", "function", {"drop": "a"}, "drop"),
    ("data_transformer", "function", {"sets": {"a": "b"}}, "sets"),
    ("database_writer", "function", {}, "table"),
    ("database_writer", "function", {"table": "1bad"}, "table"),
    ("database_writer", "function", {"table": "t", "key": []}, "key"),
    ("database_writer", "function", {"table": "t", "key": ["a", "a"]}, "key"),
    ("database_writer", "function", {"table": "t", "create_table": "no"}, "create_table"),
    ("http_request", "function", {}, "url"),
    ("http_request", "function", {"url": "ftp://example.org/x"}, "url"),
    ("http_request", "function", {"url": "http://h/", "method": "FETCH"}, "method"),
    ("http_request", "function", {"url": "http://h/", "retries": 11}, "retries"),
    ("http_request", "function", {"url": "http://h/", "request_timeout": 0}, "request_timeout"),
    (
        "http_request",
        "function",
        {"url": "http://h/", "max_response_bytes": 2_000_000},
        "max_response_bytes",
    ),
    ("http_request", "function", {"url": "http://h/", "expect_status": [99]}, "expect_status"),
    ("http_request", "function", {"url": "http://h/", "expect_status": []}, "expect_status"),
    ("http_request", "function", {"url": "http://h/", "headers": {"a": 1}}, "headers"),
    ("http_request", "function", {"url": "http://h/", "json": "text"}, "json"),
    (
        "http_request",
        "function",
        {"url": "http://h/", "json": {}, "body_from_input": "x"},
        "body_from_input",
    ),
    ("http_request", "function", {"url": "http://h/", "timeout_s": 3}, "timeout_s"),
    ("json_transform", "function", {}, None),
    ("json_transform", "function", {"mapping": {"a": "x"}, "expression": "y"}, None),
    ("json_transform", "function", {"mapping": {"a": ""}}, "mapping"),
    ("json_transform", "function", {"mapping": "a"}, "mapping"),
    ("json_transform", "function", {"expresion": "a"}, "expresion"),
    ("file_system_monitor", "source", {}, "watch_path"),
    ("file_system_monitor", "source", {"watch_path": "d", "poll_interval": 0}, "poll_interval"),
    ("file_system_monitor", "source", {"watch_path": "d", "settle_seconds": -1}, "settle_seconds"),
    ("file_system_monitor", "source", {"watch_path": "d", "recursive": "yes"}, "recursive"),
    ("file_system_monitor", "source", {"watch_path": "d", "pattern": "*.csv"}, "pattern"),
    ("jsonl_source", "source", {}, "path"),
    ("jsonl_source", "source", {"path": "x", "follow": 1}, "follow"),
    ("jsonl_source", "source", {"path": "x", "poll_interval": -1}, "poll_interval"),
    ("jsonl_source", "source", {"path": "x", "folow": True}, "folow"),
    ("mqtt_subscriber", "source", {"topics": []}, "topics"),
    ("mqtt_subscriber", "source", {"topics": ["a"], "qos": 3}, "qos"),
    ("mqtt_subscriber", "source", {"topics": ["a"], "port": 70000}, "port"),
    ("mqtt_subscriber", "source", {"topics": ["a"], "keepalive": 1}, "keepalive"),
    ("mqtt_subscriber", "source", {"topics": ["a"], "password": "p"}, "password"),
    ("mqtt_subscriber", "source", {"topic": ["a"]}, "topic"),
    ("redis_stream_source", "source", {}, "stream"),
    ("redis_stream_source", "source", {"stream": "s", "create_group": "yes"}, "create_group"),
    ("redis_stream_source", "source", {"stream": ""}, "stream"),
    ("redis_stream_source", "source", {"stream": "s", "groupname": "g"}, "groupname"),
    ("nats_jetstream_source", "source", {"stream": "s"}, "subject"),
    ("nats_jetstream_source", "source", {"stream": "s", "subject": "x", "servers": []}, "servers"),
    ("nats_jetstream_source", "source", {"stream": "s", "subject": "x", "ack_wait": 0}, "ack_wait"),
    (
        "nats_jetstream_source",
        "source",
        {"stream": "s", "subject": "x", "durable_name": "d"},
        "durable_name",
    ),
    ("kafka_consumer", "source", {}, "topics"),
    ("kafka_consumer", "source", {"topics": []}, "topics"),
    ("kafka_consumer", "source", {"topics": ["bad topic"]}, "topics"),
    (
        "kafka_consumer",
        "source",
        {"topics": ["t"], "auto_offset_reset": "smallest"},
        "auto_offset_reset",
    ),
    ("kafka_consumer", "source", {"topics": ["t"], "bootstrap_servers": []}, "bootstrap_servers"),
    ("kafka_consumer", "source", {"topics": ["t"], "group": "g"}, "group"),
    ("kafka_consumer", "source", {"topics": ["t"], "connect_timeout": "5"}, "connect_timeout"),
]


@pytest.mark.parametrize(("plugin_id", "kind", "config", "field"), BAD)
def test_bad_configurations_are_refused(
    plugin_id: str, kind: str, config: dict[str, Any], field: str | None
) -> None:
    model = model_of(plugin_id, kind)
    with pytest.raises(ValidationError) as refused:
        model.model_validate(config)
    if field is not None:
        assert field in str(refused.value)

    # At registration: the published JSON Schema, naming node and field.
    error = registration_error(plugin_id, kind, config)
    assert error is not None
    assert error.code is PluginErrorCode.InvalidWorkflowStructure
    assert "node 'the_node'" in error.message
    assert f"plugin '{plugin_id}'" in error.message
    if field is not None:
        assert field in error.message

    # At run time (function plugins): the model, unless only an undeclared key is wrong.
    plugin = REGISTRY.get(plugin_id)
    if kind == "function" and plugin is not None and set(config) <= set(model.model_fields):
        with pytest.raises(PluginError) as at_run_time:
            plugin.check_config(config)
        assert at_run_time.value.code is PluginErrorCode.InvalidConfiguration
        assert f"plugin '{plugin_id}'" in at_run_time.value.message


def test_every_builtin_has_bad_configurations_tested() -> None:
    tested = {(plugin_id, kind) for plugin_id, kind, _config, _field in BAD}
    for item in BUILTIN_PLUGINS:
        kind = "function" if isinstance(item, Plugin) else "source"
        if (item.plugin_id, kind) == ("data_source", "source"):
            continue  # the same model as the function
        assert (item.plugin_id, kind) in tested, item.plugin_id


def test_run_time_check_ignores_workflow_wide_keys_and_fills_defaults() -> None:
    plugin = REGISTRY.get("data_filter")
    assert plugin is not None
    model = model_of("data_filter", "function")
    checked = plugin.check_config({"condition": "a > 1", "batch_size": 10, "other": "x"})
    # A built-in receives its validated model, defaults filled.
    assert isinstance(checked, model)
    assert checked.model_dump() == {"condition": "a > 1", "on_error": "drop"}
    # A plain function with a model gets the dict: the other keys stay in it.
    as_dict = plugin_function("data_filter_dict", config=model)(lambda i, c, x: c)
    checked = as_dict.check_config({"condition": "a > 1", "batch_size": 10, "other": "x"})
    assert checked == {"condition": "a > 1", "on_error": "drop", "batch_size": 10, "other": "x"}


def test_models_do_not_coerce() -> None:
    """Strict models: what they accept is what the JSON Schema accepts."""
    plugin = REGISTRY.get("data_processor")
    assert plugin is not None
    for bad in ({"limit": "5"}, {"limit": True}, {"descending": 1}, {"select": ("a",)}):
        with pytest.raises(PluginError):
            plugin.check_config(bad)
