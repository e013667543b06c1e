"""The ``execution`` key (light nodes): what registration refuses, what workflow code reads,
and what the catalog says about plugins' lightness."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import PluginError, PluginErrorCode, validate_workflow
from engine.language.options import LOCAL_TIMEOUT, RetrySettings, node_options, plugin_config
from engine.language.validation import compile_workflow
from engine.temporal.catalog import describe_plugins, light_plugins, uses_auto
from plugins import PluginBase, PluginRegistry, plugin
from tests.helpers import plugins as test_plugins
from tests.helpers.builders import chain, node, workflow


def _problems(definition) -> list[str]:
    with pytest.raises(PluginError) as info:
        validate_workflow(definition)
    assert info.value.code is PluginErrorCode.InvalidWorkflowStructure
    return [problem["message"] for problem in info.value.details["problems"]]


def test_a_bad_value_is_refused_naming_node_and_value() -> None:
    definition = workflow("bad", [node("a"), node("b", execution="fast")])
    assert _problems(definition) == [
        "node 'b' (echo): execution must be one of 'activity', 'local', 'auto', got 'fast'"
    ]


def test_a_bad_global_value_is_refused_once() -> None:
    definition = chain("bad", 3, execution=["local"])
    assert _problems(definition) == [
        "global_configuration: global_configuration.execution must be one of 'activity', "
        "'local', 'auto', got \"['local']\""
    ]
    # A node's own valid value overrides it, yet the global value is still wrong.
    definition.nodes[0].configuration["execution"] = "local"
    assert len(_problems(definition)) == 1


def test_a_local_node_takes_at_most_a_minute() -> None:
    definition = workflow("slow", [node("a", execution="local", timeout=3600)])
    assert _problems(definition) == [
        "node 'a' (echo): execution 'local' allows a timeout of at most 60s (a local attempt "
        "holds its workflow task), got 3600s: lower it or use 'activity'"
    ]
    validate_workflow(workflow("ok", [node("a", execution="local", timeout=60)]))
    validate_workflow(workflow("auto", [node("a", execution="auto", timeout=3600)]))


def test_options_node_wins_and_local_timeouts_are_short() -> None:
    assert node_options({}, {}).execution == "activity"
    assert node_options({"execution": "auto"}, {}).execution == "auto"
    options = node_options({"execution": "auto"}, {"execution": "local", "timeout": 5})
    assert (options.execution, options.local_timeout) == ("local", 5)
    assert node_options({}, {"execution": "local"}).local_timeout == LOCAL_TIMEOUT
    assert node_options({"timeout": 3600}, {"execution": "auto"}).local_timeout == 60


def test_a_definition_from_before_the_key_runs_as_it_did() -> None:
    """Workflow code does not refuse a value registration would: before the key was reserved
    a plugin could have had a field of that name, and its runs must go on unchanged."""
    old = workflow("old", [node("a", execution="fast")])
    compile_workflow(old)  # no error in workflow code
    assert node_options({}, {"execution": "fast"}).execution == "activity"
    assert plugin_config({}, {"execution": "fast"}) == {"execution": "fast"}
    assert plugin_config({"execution": "auto"}, {"x": 1}) == {"x": 1}


def test_plugins_declare_lightness_and_the_catalog_carries_it(tmp_path: Path) -> None:
    class Shape(PluginBase):
        plugin_id = "shape"
        light = True

        def run(self, inputs, config, ctx):  # type: ignore[no-untyped-def]
            return {}

    @plugin("pure", light=True)
    def pure(inputs, config, ctx):  # type: ignore[no-untyped-def]
        return {}

    registry = PluginRegistry([Shape(), pure])
    registry.register("io", lambda inputs, config, ctx: {})
    catalog = describe_plugins(registry)
    assert {info.plugin_id: info.light for info in catalog} == {
        "io": False,
        "pure": True,
        "shape": True,
    }
    assert light_plugins(catalog) == ["pure", "shape"]
    builtins = light_plugins(describe_plugins(test_plugins.test_registry(tmp_path)))
    # Pure transforms are light; plugins doing I/O are not.
    assert {"json_transform", "data_filter", "data_transformer", "data_processor"} <= set(builtins)
    assert not {"http_request", "data_sink", "data_source", "file_validator"} & set(builtins)


def test_only_definitions_with_auto_read_the_catalog() -> None:
    assert not uses_auto([chain("plain", 2), chain("local", 2, execution="local")])
    assert uses_auto([chain("plain", 2), chain("auto", 2, execution="auto")])
    pinned = chain("pinned", 1, execution="auto")
    pinned.nodes[0].configuration["execution"] = "activity"
    assert not uses_auto([pinned])


def test_retry_delays_follow_temporals_schedule_and_stop_where_it_would() -> None:
    retry = RetrySettings(
        max_attempts=5,
        initial_interval=0.5,
        backoff_coefficient=3,
        maximum_interval=2,
        non_retryable_errors=["Fatal"],
    )
    assert [retry.delay_after(n, "ValueError", True) for n in range(1, 6)] == [
        0.5,
        1.5,
        2.0,  # capped at maximum_interval
        2.0,
        None,  # the fifth attempt was the last
    ]
    assert retry.delay_after(1, "Fatal", True) is None  # listed as non-retryable
    assert retry.delay_after(1, "ValueError", False) is None  # marked non-retryable
    # A maximum below the initial interval never shortens the first wait (as Temporal).
    assert RetrySettings(initial_interval=5, maximum_interval=1).delay_after(2, "E", True) == 5
