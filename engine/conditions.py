"""Safe conditions for Control connections, in CEL (Common Expression Language).

CEL is side-effect free and not Turing complete: no loops, no calls into Python, no attribute
access beyond the data given. Values are always bound as variables (the top-level keys of the
source node's output), never pasted into the expression text. ``file_valid == true`` is a
complete condition.

Conditions are compiled at registration (a syntax error is an ``InvalidConnection``) and
evaluated inside workflow code, so replay depends on the exact ``cel-python`` version, which
``pyproject.toml`` pins. Size and nesting are capped before parsing, because the parser is
recursive.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

# celpy logs every evaluation error at ERROR level; we report errors ourselves.
logging.getLogger("celpy").setLevel(logging.CRITICAL)

MAX_CONDITION_LENGTH = 1000
MAX_CONDITION_NESTING = 32

_ENV = celpy.Environment()


class ConditionError(ValueError):
    """A condition could not be compiled or evaluated; the message says why."""


@dataclass(frozen=True)
class Condition:
    """A compiled condition. Evaluate it with :meth:`evaluate`."""

    text: str
    _program: Any

    def evaluate(self, variables: dict[str, Any]) -> bool:
        """Evaluate with ``variables`` bound; the result must be a boolean.

        Raises:
            ConditionError: unknown variable, type mismatch, division by zero, non-boolean
                result, or data CEL cannot represent.
        """
        try:
            activation = {key: _to_cel(value) for key, value in variables.items()}
            result = self._program.evaluate(activation)
        except CELEvalError as exc:
            raise ConditionError(_eval_message(exc, variables)) from None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise ConditionError(f"cannot evaluate: {exc}") from None
        if isinstance(result, CELEvalError):
            raise ConditionError(_eval_message(result, variables))
        if not isinstance(result, celpy.celtypes.BoolType | bool):
            raise ConditionError(f"result is {_cel_type_name(result)}, not a boolean")
        return bool(result)


def compile_condition(text: str) -> Condition:
    """Compile a CEL condition.

    Raises:
        ConditionError: empty, too long, nested too deeply, or not valid CEL.
    """
    if not isinstance(text, str):
        raise ConditionError(f"condition must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ConditionError("condition is empty")
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(
            f"condition is {len(text)} characters long; the limit is {MAX_CONDITION_LENGTH}"
        )
    depth = _max_nesting(text)
    if depth > MAX_CONDITION_NESTING:
        raise ConditionError(
            f"condition nests {depth} levels deep; the limit is {MAX_CONDITION_NESTING}"
        )
    try:
        ast = _ENV.compile(text)
        program = _ENV.program(ast)
    except CELParseError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise ConditionError(f"not valid CEL: {first_line}") from None
    except RecursionError:
        raise ConditionError("condition nests too deeply") from None
    except Exception as exc:  # the parser raises lark errors of several kinds
        raise ConditionError(f"not valid CEL: {type(exc).__name__}: {exc}") from None
    return Condition(text=text, _program=program)


def _max_nesting(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth = max(0, depth - 1)
    # Unary operators chain without brackets ("!!!!x", "----1"): count runs of them too.
    run = longest = 0
    for char in text:
        if char in "!-":
            run += 1
            longest = max(longest, run)
        elif not char.isspace():
            run = 0
    return max(deepest, longest)


def _to_cel(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"value {value!r} is not representable")
    return json_to_cel(value)


def _eval_message(exc: Any, variables: dict[str, Any]) -> str:
    args = getattr(exc, "args", ())
    text = str(args[0]) if args else str(exc)
    if text.startswith("undeclared reference to"):
        name = text.split("'")[1] if "'" in text else "?"
        available = ", ".join(sorted(variables)) or "none"
        return f"unknown variable '{name}' (the output has: {available})"
    if "no matching overload" in text or text == "no such overload":
        return "type mismatch: the operator does not apply to these value types"
    if "divide by zero" in text:
        return "division by zero"
    return text.splitlines()[0][:200]


def _cel_type_name(value: Any) -> str:
    name = type(value).__name__
    return name.removesuffix("Type").lower() or name
