"""Validation: every check, the error code it raises, and that it is linear."""

from __future__ import annotations

import random
import time

import pytest

from engine import (
    ConnectionType,
    PluginError,
    PluginErrorCode,
    PluginWorkflow,
    WorkflowExecutionMode,
    WorkflowNode,
    WorkflowNodeType,
    validate_workflow,
)
from engine.language.modification import DefinitionChange, apply_change
from engine.language.validation import compile_workflow
from engine.runtime.passes import pass_workflow
from tests.helpers.builders import chain, edge, node, workflow

Code = PluginErrorCode
Kind = ConnectionType


def _error(definition: PluginWorkflow) -> PluginError:
    with pytest.raises(PluginError) as info:
        validate_workflow(definition)
    return info.value


def test_valid_definitions_pass() -> None:
    validate_workflow(chain("ok", 5))
    validate_workflow(workflow("empty", []))  # may be built up by modification


@pytest.mark.parametrize(
    ("definition", "code", "fragment"),
    [
        (workflow("", [node("a")]), Code.InvalidWorkflowStructure, "workflow_id is empty"),
        (workflow("bad id", [node("a")]), Code.InvalidWorkflowStructure, "may only contain"),
        (workflow("w", [node("")]), Code.InvalidWorkflowStructure, "node #0: node_id is empty"),
        (
            workflow("w", [node("a"), node("a")]),
            Code.InvalidWorkflowStructure,
            "duplicate node_id 'a'",
        ),
        (
            workflow("w", [node("\u0430bc")]),
            Code.InvalidWorkflowStructure,
            "may only contain",
        ),  # Cyrillic a
        (
            workflow("w", [node("a", "")]),
            Code.InvalidWorkflowStructure,
            "node 'a' has no plugin_id",
        ),
        (workflow("w", [node("a")], [edge("a", "zz")]), Code.NodeNotFound, "target_node 'zz'"),
        (workflow("w", [node("a")], [edge("", "a")]), Code.NodeNotFound, "has no source_node"),
        (workflow("w", [node("a")], [edge("a", "a")]), Code.CircularDependency, "to itself"),
        (
            workflow("w", [node("a"), node("b")], [edge("a", "b", condition="ok ==")]),
            Code.InvalidConnection,
            "not valid CEL",
        ),
        (
            workflow(
                "w",
                [node("a"), node("b")],
                [edge("a", "b").model_copy(update={"properties": {"condition": "x"}})],
            ),
            Code.InvalidConnection,
            "only evaluated on Control",
        ),
        (
            workflow(
                "w",
                [node("a"), node("b"), node("c")],
                [edge("a", "c"), edge("b", "c", target_port="a")],
            ),
            Code.InvalidConnection,
            "both deliver to input 'a'",
        ),
        (
            workflow("w", [node("a"), node("b")], [edge("a", "b"), edge("a", "b")]),
            Code.InvalidConnection,
            "duplicates an earlier connection",
        ),
        (
            workflow("w", [node("a"), node("b")], [edge("a", "b", Kind.Event)]),
            Code.ExecutionModeNotSupported,
            "only EventDriven mode routes",
        ),
        (
            workflow("w", [node("a")], mode=WorkflowExecutionMode.Streaming),
            Code.ExecutionModeNotSupported,
            "needs a Source node",
        ),
        (
            workflow("w", [node("a", retry={"max_attempts": 0})]),
            Code.InvalidWorkflowStructure,
            "retry.max_attempts",
        ),
        (
            workflow("w", [node("a", timeout=-1)]),
            Code.InvalidWorkflowStructure,
            "timeout",
        ),
        (
            workflow("w", [node("a", retry={"max_attemps": 2})]),
            Code.InvalidWorkflowStructure,
            "max_attemps",
        ),
        (
            workflow("w", [node("a", max_parallelism=3)]),
            Code.InvalidWorkflowStructure,
            "belongs in global_configuration",
        ),
        (
            workflow("w", [node("a")], max_parallelism=0),
            Code.InvalidWorkflowStructure,
            "max_parallelism",
        ),
        (
            workflow("w", [node("a")], max_in_flight=1001),
            Code.InvalidWorkflowStructure,
            "max_in_flight",
        ),
        (
            workflow("w", [node("a", max_in_flight=5)]),
            Code.InvalidWorkflowStructure,
            "belongs in global_configuration",
        ),
    ],
)
def test_each_problem_has_its_code(
    definition: PluginWorkflow, code: PluginErrorCode, fragment: str
) -> None:
    error = _error(definition)
    assert error.code is code, error.message
    assert fragment in error.message


def test_ports_are_checked_where_declared() -> None:
    source = WorkflowNode(node_id="s", plugin_id="p", output_ports=["raw"])
    target = WorkflowNode(node_id="t", plugin_id="p", input_ports=["input"])
    free = WorkflowNode(node_id="f", plugin_id="p")
    ok = workflow(
        "w",
        [source, target, free],
        [
            edge("s", "t", source_port="raw", target_port="input"),
            edge("s", "f", source_port="any", target_port="x"),
        ],
    )
    assert _error(ok).code is Code.InvalidConnection  # "any" is not an output port of s
    good = workflow(
        "w",
        [source, target, free],
        [
            edge("s", "t", source_port="raw", target_port="input"),
            edge("t", "f", source_port="x", target_port="y"),
        ],
    )
    validate_workflow(good)  # t declares no output ports, f no input ports
    bad_target = workflow(
        "w", [source, target], [edge("s", "t", source_port="raw", target_port="nope")]
    )
    error = _error(bad_target)
    assert error.code is Code.InvalidConnection
    assert "no input port 'nope'" in error.message
    assert "declared: input" in error.message


@pytest.mark.parametrize("kind", [Kind.DataFlow, Kind.Control, Kind.Dependency])
def test_cycles_over_every_ordering_kind_are_named(kind: ConnectionType) -> None:
    nodes = [node(n) for n in "abcd"]
    edges = [edge("a", "b", kind), edge("b", "c", kind), edge("c", "d", kind), edge("d", "b", kind)]
    error = _error(workflow("w", nodes, edges))
    assert error.code is Code.CircularDependency
    assert "b -> c -> d -> b" in error.message
    assert error.details["cycle"] == ["b", "c", "d", "b"]


def test_event_edges_may_not_form_cycles_but_compile_as_before() -> None:
    # A pass runs Event connections as Dependency ones (engine/runtime/passes.py), so every pass of
    # a cycle through them, feedback into the Source node included, would fail: refused at
    # registration. Workflow code keeps compiling such a definition (stored before this
    # rule), and each of its passes fails as it always did.
    nodes = [
        WorkflowNode(node_id="src", plugin_id="p", node_type=WorkflowNodeType.Source),
        node("b"),
    ]
    edges = [edge("src", "b", Kind.Event), edge("b", "src", Kind.Event)]
    definition = workflow("w", nodes, edges, mode=WorkflowExecutionMode.EventDriven)
    error = _error(definition)
    assert error.code is Code.CircularDependency
    assert "src -> b -> src" in error.message
    compile_workflow(definition)
    with pytest.raises(PluginError, match="src -> b -> src"):
        compile_workflow(pass_workflow(definition, "src", "tick"))


def test_all_problems_are_reported_at_once() -> None:
    definition = workflow(
        "w", [node("a"), node("a"), node("b", "")], [edge("a", "zz"), edge("b", "b")]
    )
    error = _error(definition)
    assert error.code is Code.InvalidWorkflowStructure  # the first problem's code
    codes = [p["code"] for p in error.details["problems"]]
    assert codes == [
        "InvalidWorkflowStructure",
        "InvalidWorkflowStructure",
        "NodeNotFound",
        "CircularDependency",
    ]
    assert "has 4 problems" in error.message


def test_cycles_are_reported_beside_other_problems() -> None:
    # a -> b -> c -> a is a cycle; the connection c -> a also names a missing port, and
    # another connection a bad condition: all three problems are reported.
    nodes = [node("a"), WorkflowNode(node_id="b", plugin_id="p", input_ports=["in"]), node("c")]
    edges = [
        edge("a", "b", target_port="in"),
        edge("b", "c"),
        edge("c", "a", condition="x >= "),
        edge("a", "b", Kind.Dependency, target_port="nope"),
    ]
    error = _error(workflow("w", nodes, edges))
    codes = [p["code"] for p in error.details["problems"]]
    assert codes == ["InvalidConnection", "InvalidConnection", "CircularDependency"]
    assert "a -> b -> c -> a" in error.message
    assert error.details["cycle"] == ["a", "b", "c", "a"]


def test_every_disjoint_cycle_is_named() -> None:
    nodes = [node(n) for n in ("a", "b", "c", "x", "y", "after")]
    edges = [
        edge("a", "b"),
        edge("b", "a", Kind.Dependency),
        edge("x", "y"),
        edge("y", "c", Kind.Dependency),
        edge("c", "x", Kind.Dependency),
        edge("y", "after"),  # downstream of a cycle, in none
    ]
    error = _error(workflow("w", nodes, edges))
    messages = [p["message"] for p in error.details["problems"]]
    assert messages == [
        "circular dependency: a -> b -> a",
        "circular dependency: c -> x -> y -> c",
    ]
    assert error.details["cycles"] == [["a", "b", "a"], ["c", "x", "y", "c"]]
    assert "has 2 problems" in error.message


def test_a_ten_thousand_node_cycle_is_named_without_recursion() -> None:
    # CPU time of this process: wall time would count whatever else the machine runs.
    definition = chain("big", 10_000)
    definition.connections.append(edge("n9999", "n0", Kind.Dependency))
    started = time.process_time()
    error = _error(definition)
    assert time.process_time() - started < 2.0
    assert error.code is Code.CircularDependency
    assert "(10,000 nodes)" in error.message


def _random_dag(size: int, seed: int = 0) -> PluginWorkflow:
    rng = random.Random(seed)
    nodes = [node(f"n{i}") for i in range(size)]
    edges = []
    for i in range(1, size):
        for source in {rng.randrange(i) for _ in range(3)}:
            edges.append(edge(f"n{source}", f"n{i}", Kind.Dependency))
    return workflow("big", nodes, edges)


def test_ten_thousand_nodes_validate_well_under_a_second() -> None:
    definition = chain("big", 10_000)
    started = time.process_time()
    validate_workflow(definition)
    assert time.process_time() - started < 1.0


def test_a_dense_ten_thousand_node_graph_is_refused_quickly_for_its_size() -> None:
    definition = _random_dag(10_000)  # ~30,000 connections: over the definition byte limit
    started = time.process_time()
    error = _error(definition)
    assert time.process_time() - started < 1.0
    assert "bytes of JSON; the limit is 1,200,000" in error.message


def test_size_limits() -> None:
    error = _error(workflow("w", [node(f"n{i}") for i in range(10_001)]))
    assert "the limit is 10000" in error.message


# -- dynamic modification ---------------------------------------------------------------


def test_modification_bumps_version_and_validates() -> None:
    current = chain("w", 2).model_copy(update={"version": 4})
    added = apply_change(current, DefinitionChange(kind="add_node", node=node("x")))
    assert added.version == 5
    assert added.node("x") is not None
    assert current.node("x") is None  # the input is untouched
    connected = apply_change(
        added, DefinitionChange(kind="add_connection", connection=edge("n1", "x"))
    )
    assert len(connected.connections) == 2
    removed = apply_change(connected, DefinitionChange(kind="remove_node", node_id="n1"))
    assert [n.node_id for n in removed.nodes] == ["n0", "x"]
    assert removed.connections == []  # both connections touched n1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (DefinitionChange(kind="add_node", node=node("n0")), Code.InvalidWorkflowStructure),
        (DefinitionChange(kind="remove_node", node_id="zz"), Code.NodeNotFound),
        (
            DefinitionChange(kind="add_connection", connection=edge("n1", "n0")),
            Code.CircularDependency,
        ),
        (DefinitionChange(kind="add_connection", connection=edge("n1", "zz")), Code.NodeNotFound),
        (
            DefinitionChange(kind="replace", workflow=chain("other", 1)),
            Code.InvalidWorkflowStructure,
        ),
        (DefinitionChange(kind="add_node"), Code.InvalidWorkflowStructure),
    ],
)
def test_bad_modifications_change_nothing(change: DefinitionChange, code: PluginErrorCode) -> None:
    current = chain("w", 2)
    before = current.model_copy(deep=True)
    with pytest.raises(PluginError) as info:
        apply_change(current, change)
    assert info.value.code is code
    assert current == before
