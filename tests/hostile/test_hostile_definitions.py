"""Hostile definitions (tests/hostile/corpus.py): each is refused up front with the right code
and a message naming the problem, within a CPU and a memory budget, without a server.

How a case is read: JSON text through ``PluginWorkflow.from_json_text`` (the strict loader),
a JSON dict through ``PluginWorkflow.from_json``, then ``validate_workflow`` (what
``register_workflow`` runs before anything reaches Temporal). ``test_hostile_api.py`` sends
the same definitions to the real server and checks that nothing is stored.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from engine import PluginError, PluginWorkflow, validate_workflow
from engine.language.models import MAX_JSON_DEPTH, find_json_problem, load_json_text
from tests.hostile.budget import CPU_SECONDS, PEAK_BYTES, measure
from tests.hostile.corpus import CONDITIONS, DEFINITIONS, DefinitionCase, N


def materialize(case: DefinitionCase) -> Any:
    """The case's input, built (outside any measurement) if it is given as a function."""
    return case.input() if callable(case.input) else case.input


def load_and_validate(value: Any) -> PluginWorkflow:
    """What a client does with a definition: read it, then validate it."""
    if isinstance(value, str | bytes):
        workflow = PluginWorkflow.from_json_text(value, source="definition.json")
    elif isinstance(value, PluginWorkflow):
        workflow = value
    else:
        workflow = PluginWorkflow.from_json(value)
    validate_workflow(workflow)
    return workflow


@pytest.mark.parametrize("case", DEFINITIONS, ids=[c.id for c in DEFINITIONS])
def test_hostile_definition_is_refused(case: DefinitionCase) -> None:
    value = materialize(case)
    measured = measure(lambda: load_and_validate(value))
    error = measured.error
    assert isinstance(error, PluginError), f"not refused with a PluginError: {error!r}"
    assert error.code is case.code, error
    assert case.message in error.message, error.message
    assert measured.cpu < CPU_SECONDS, f"{measured.cpu:.3f} s of CPU"
    assert measured.peak < PEAK_BYTES, f"{measured.peak / 1e6:.1f} MB at peak"
    # Messages name the problem without echoing a hostile input wholesale.
    assert len(error.message) < 4000, len(error.message)


def test_the_corpus_is_large_and_covers_every_category() -> None:
    categories = Counter(case.category for case in DEFINITIONS)
    assert set(categories) == {"structure", "ids", "json", "values", "limits"}
    assert min(categories.values()) >= 3, categories
    assert len(DEFINITIONS) + len(CONDITIONS) >= 60
    assert len({case.id for case in DEFINITIONS}) == len(DEFINITIONS)


# -- what the corpus decides, stated directly ---------------------------------------------------


def test_ids_are_ascii_so_normalisation_cannot_merge_or_split_them() -> None:
    # NFC "café" and NFD "café" look the same; both are refused, so two nodes can never be
    # told apart (or merged) by a normalisation step somewhere downstream.
    for node_id in ("caf\u00e9", "cafe\u0301"):
        with pytest.raises(PluginError, match="may only contain ASCII"):
            load_and_validate({"workflow_id": "w", "nodes": [N(node_id, "x")]})
    # Valid ids are compared as they are: case matters, nothing is folded.
    nodes = [{"node_id": "A", "plugin_id": "p"}, {"node_id": "a", "plugin_id": "p"}]
    load_and_validate({"workflow_id": "w", "nodes": nodes})


def test_a_port_on_a_node_without_declared_ports_is_an_input_key() -> None:
    # Not hostile: such a port names the key under which the data arrives. Its name must
    # still be an id (see the look-alike-port case).
    load_and_validate(
        {
            "workflow_id": "w",
            "nodes": [{"node_id": "a", "plugin_id": "p"}, {"node_id": "b", "plugin_id": "p"}],
            "connections": [{"source_node": "a", "target_node": "b", "target_port": "left"}],
        }
    )


def test_event_cycles_are_refused_because_no_pass_could_run_them() -> None:
    # The corpus refuses Event cycles at registration; this is why: a pass runs Event
    # connections as Dependency ones, so its graph has the cycle. Workflow code still
    # compiles the whole definition (one stored before the rule keeps its behaviour).
    from engine.language.validation import compile_workflow
    from engine.runtime.passes import pass_workflow

    definition = PluginWorkflow.from_json(
        {
            "workflow_id": "w",
            "execution_mode": "event_driven",
            "nodes": [
                {"node_id": "src", "plugin_id": "timer", "node_type": "source"},
                {"node_id": "b", "plugin_id": "p"},
            ],
            "connections": [
                {"source_node": "src", "target_node": "b", "connection_type": "event"},
                {"source_node": "b", "target_node": "src", "connection_type": "event"},
            ],
        }
    )
    with pytest.raises(PluginError, match="circular dependency: src -> b -> src"):
        validate_workflow(definition)
    compile_workflow(definition)
    with pytest.raises(PluginError, match="circular dependency: src -> b -> src"):
        compile_workflow(pass_workflow(definition, "src", "tick"))


def test_the_strict_loader_keeps_what_json_means() -> None:
    text = '{"a": [1, -2, 3.5, "\\u00e9", true, null], "b": {"c": 9223372036854775807}}'
    assert load_json_text(text) == {
        "a": [1, -2, 3.5, "é", True, None],
        "b": {"c": 2**63 - 1},
    }
    # Exactly at the nesting limit is fine; one more level is not.
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert find_json_problem(load_json_text(deep)) is None
    with pytest.raises(PluginError, match=f"nests more than {MAX_JSON_DEPTH} levels"):
        load_json_text("[" + deep + "]")


def test_a_valid_definition_round_trips_through_the_strict_loader() -> None:
    source = PluginWorkflow.from_json(
        {
            "workflow_id": "w",
            "nodes": [{"node_id": "a", "plugin_id": "echo", "configuration": {"x": [1.5, "é"]}}],
        }
    )
    assert PluginWorkflow.from_json_text(source.model_dump_json()) == source
