"""Hostile conditions (tests/hostile/corpus.py): refused at registration with
``InvalidConnection`` and a message naming the problem, or, where only the data can tell,
stopped when evaluated with a ``ConditionError`` naming it; either way within a CPU and a
memory budget, and never by exhausting the stack or crashing the process.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from engine import PluginError, PluginErrorCode, PluginWorkflow, validate_workflow
from engine.language.conditions import (
    MAX_CONDITION_COST,
    MAX_CONDITION_DEPTH,
    MAX_CONDITION_NESTING,
    ConditionError,
    compile_condition,
)
from tests.hostile.budget import CPU_SECONDS, EVALUATION_CPU_SECONDS, PEAK_BYTES, measure
from tests.hostile.corpus import CONDITIONS, ConditionCase

REFUSED = [c for c in CONDITIONS if c.variables is None and c.build is None]
EVALUATED = [c for c in CONDITIONS if c not in REFUSED]


def definition(condition: Any) -> PluginWorkflow:
    return PluginWorkflow.from_json(
        {
            "workflow_id": "hostile-condition",
            "nodes": [{"node_id": "a", "plugin_id": "echo"}, {"node_id": "b", "plugin_id": "echo"}],
            "connections": [
                {
                    "source_node": "a",
                    "target_node": "b",
                    "connection_type": "control",
                    "properties": {"condition": condition},
                }
            ],
        }
    )


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_hostile_condition_is_refused_at_registration(case: ConditionCase) -> None:
    workflow = definition(case.text)
    limit = sys.getrecursionlimit()
    measured = measure(lambda: validate_workflow(workflow))
    assert sys.getrecursionlimit() == limit
    error = measured.error
    assert isinstance(error, PluginError), f"not refused with a PluginError: {error!r}"
    assert error.code is PluginErrorCode.InvalidConnection, error
    assert case.message in error.message, error.message
    assert measured.cpu < CPU_SECONDS, f"{measured.cpu:.3f} s of CPU"
    assert measured.peak < PEAK_BYTES, f"{measured.peak / 1e6:.1f} MB at peak"
    assert len(error.message) < 4000, len(error.message)


@pytest.mark.parametrize("case", EVALUATED, ids=[c.id for c in EVALUATED])
def test_hostile_condition_is_bounded_when_evaluated(case: ConditionCase) -> None:
    validate_workflow(definition(case.text))  # it is a valid condition
    condition = compile_condition(case.text)
    variables = case.build() if case.build is not None else case.variables
    assert variables is not None
    measured = measure(lambda: condition.evaluate(variables))
    if case.result is not None:
        assert measured.error is None, measured.error
        assert measured.result is case.result
    else:
        assert isinstance(measured.error, ConditionError), measured.error
        assert case.message in str(measured.error), str(measured.error)
    assert measured.cpu < EVALUATION_CPU_SECONDS, f"{measured.cpu:.3f} s of CPU"
    assert measured.peak < PEAK_BYTES, f"{measured.peak / 1e6:.1f} MB at peak"


def test_every_category_of_hostile_condition_is_covered() -> None:
    assert len(REFUSED) >= 20
    assert len(EVALUATED) >= 10
    assert len({c.id for c in CONDITIONS}) == len(CONDITIONS)


# -- the limits themselves ----------------------------------------------------------------------


def test_the_deepest_allowed_condition_evaluates_with_stack_to_spare() -> None:
    # Seven levels of brackets around a chain: just inside MAX_CONDITION_DEPTH. It must
    # evaluate even with most of the recursion limit already used, as inside a worker.
    text = "(" * 7 + " + ".join(["x"] * 10) + ")" * 7 + " == 10"
    condition = compile_condition(text)
    depth = _stack_depth()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 5 * MAX_CONDITION_DEPTH + 100)
    try:
        assert condition.evaluate({"x": 1}) is True
    finally:
        sys.setrecursionlimit(limit)


def test_one_level_more_is_refused() -> None:
    eight = "(" * 8 + "x" + ")" * 8 + " == 1"
    assert compile_condition(eight, strict=True).evaluate({"x": 1}) is True
    with pytest.raises(ConditionError, match=f"102 levels; the limit is {MAX_CONDITION_DEPTH}"):
        compile_condition(f"({eight})", strict=True)
    brackets = "(" * MAX_CONDITION_NESTING + "x" + ")" * MAX_CONDITION_NESTING + " == 1"
    compile_condition(brackets)  # the workflow-side rules: brackets only
    with pytest.raises(ConditionError, match=f"the limit is {MAX_CONDITION_NESTING}$"):
        compile_condition(f"({brackets})")


# Refused at registration only: workflow code compiles them as the first release did, so a
# definition stored before a rule existed keeps the behaviour it had (and its replays).
# (A look-alike letter is not valid CEL anyway; registration only names the character.)
REGISTRATION_ONLY = [
    "__import__('os').system('id') == 0",
    "exec('x') == null",
    "(" * 9 + "x" + ")" * 9 + " == 1",
    "s.matches('(a)\\\\1')",
    "1 / 0 == 1",
]


@pytest.mark.parametrize("text", REGISTRATION_ONLY)
def test_workflow_code_compiles_what_only_registration_refuses(text: str) -> None:
    with pytest.raises(ConditionError):
        compile_condition(text, strict=True)
    compile_condition(text)


def test_the_meter_is_a_count_not_a_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same evaluation stops at the same step every time: a replay decides the same way.
    # No clock is read: evaluation works with every clock of the time module broken.
    def no_clock() -> float:
        raise AssertionError("a condition read a clock")

    for name in ("time", "monotonic", "perf_counter", "process_time", "thread_time"):
        monkeypatch.setattr(time, name, no_clock)
        monkeypatch.setattr(time, f"{name}_ns", no_clock)
    condition = compile_condition("items.exists(i, i == -1)")
    allowed = {"items": list(range(MAX_CONDITION_COST // 30))}
    refused = {"items": list(range(MAX_CONDITION_COST // 10))}
    for _ in range(2):
        assert condition.evaluate(allowed) is False
        with pytest.raises(ConditionError, match="is too expensive"):
            condition.evaluate(refused)


def test_only_the_variables_a_condition_names_are_read() -> None:
    # A huge or hostile key elsewhere in the output costs nothing and breaks nothing.
    condition = compile_condition("ok == true")
    nested: dict[str, Any] = {}
    for _ in range(5000):
        nested = {"a": nested}
    output = {"ok": True, "blob": list(range(1_000_000)), "deep": nested, "bad": float("nan")}
    measured = measure(lambda: condition.evaluate(output))
    assert measured.result is True
    assert measured.cpu < 0.05


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth
