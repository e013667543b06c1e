"""CEL conditions: the spec's syntax works, values are data, hostile text is refused."""

from __future__ import annotations

import pytest

from engine.language.conditions import MAX_CONDITION_LENGTH, ConditionError, compile_condition


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("file_valid == true", {"file_valid": True}, True),
        ("file_valid == false", {"file_valid": True}, False),
        ("size > 10 && kind == 'csv'", {"size": 11, "kind": "csv"}, True),
        ("score >= 0.5", {"score": 0.25}, False),
        ("'x' in tags", {"tags": ["x", "y"]}, True),
        ("meta.level == 2", {"meta": {"level": 2}}, True),
        ("size(items) == 3", {"items": [1, 2, 3]}, True),
        ("name.startsWith('ab')", {"name": "abc"}, True),
    ],
)
def test_evaluates(text: str, variables: dict[str, object], expected: bool) -> None:
    assert compile_condition(text).evaluate(variables) is expected


def test_values_are_bound_not_spliced() -> None:
    # A value that looks like code stays a string.
    condition = compile_condition("name == 'x'")
    assert condition.evaluate({"name": "x' || true || '"}) is False


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("x >", "not valid CEL"),
        ("__import__('os').system('id')", None),
        ("(" * 40 + "1" + ")" * 40 + " == 1", "nests"),
        ("!" * 40 + "true", "nests"),
        ("a" * (MAX_CONDITION_LENGTH + 1), "characters long"),
    ],
)
def test_compile_rejects(text: str, fragment: str | None) -> None:
    if fragment is None:
        # Compiles (it is a call expression) but cannot do anything: no such function.
        with pytest.raises(ConditionError):
            compile_condition(text).evaluate({})
        return
    with pytest.raises(ConditionError, match=fragment):
        compile_condition(text)


@pytest.mark.parametrize(
    ("text", "variables", "fragment"),
    [
        ("missing == 1", {"present": 1}, "unknown variable 'missing'"),
        ("x + 1", {"x": 1}, "not a boolean"),
        ("x > 'a'", {"x": 1}, "type mismatch"),
        ("x / 0 == 1", {"x": 1}, "division by zero"),
        ("x == 1", {"x": float("nan")}, "not representable"),
    ],
)
def test_evaluate_errors_are_clear(text: str, variables: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConditionError, match=fragment):
        compile_condition(text).evaluate(variables)


def test_compile_rejects_non_strings() -> None:
    with pytest.raises(ConditionError, match="must be a string"):
        compile_condition(42)  # type: ignore[arg-type]
