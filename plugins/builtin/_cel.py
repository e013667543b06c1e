"""CEL expressions that compute values, for the stream processors.

:mod:`engine.language.conditions` evaluates boolean conditions inside workflow code. The processors
(``data_filter``, ``data_transformer``) run in activities and also need expressions whose
result is a value (``price * quantity``), converted back to plain JSON types. The same
safety rules apply: CEL has no loops, no I/O and no access to Python objects; item values are
bound as variables, never pasted into the text; length and nesting are capped before parsing.

Evaluation is metered exactly as connection conditions are (:class:`engine.language.conditions.
MeteredProgram`: only the variables an expression names are converted; every value
converted, node visited, macro iteration and 256 characters or 16 elements handled costs
units), with a budget of :data:`MAX_EXPRESSION_COST` units per evaluation, that is per
expression and item. An evaluation that needs more raises :class:`ExpressionTooExpensive`:
it is a property of the expression, so the processors fail the call with it whatever their
``on_error`` says. The added string functions are priced from their arguments before they
run, so ``s.replace('', long)`` over a long string is stopped before it builds the result.

Besides CEL's standard functions (``size``, ``contains``, ``startsWith``, ``endsWith``,
``matches``, ``int``, ``double``, ``string``, ``bool``, ...), cel-python 0.5 lacks the
strings extension of other CEL implementations, so these are added, with the same names and
meanings: ``s.lowerAscii()``, ``s.upperAscii()``, ``s.trim()``, ``s.replace(old, new)``,
``s.split(separator)``, ``list.join(separator)`` (also ``list.join()``), ``s.indexOf(sub)``,
``s.lastIndexOf(sub)``, ``s.substring(start)`` and ``s.substring(start, end)``.
"""

from __future__ import annotations

import base64
import datetime
import functools
import math
from dataclasses import dataclass
from typing import Any

from celpy import celtypes
from celpy.evaluation import CELEvalError

# Importing engine.language.conditions also quietens celpy's logging of every evaluation error.
from engine.base.errors import PluginError, PluginErrorCode
from engine.language.conditions import (
    BudgetExceeded,
    MeteredProgram,
    PricedFunction,
    metered_program,
)
from engine.language.expressions import ExpressionError, parse_cel

__all__ = [
    "COMPILED_CACHE_SIZE",
    "MAX_EXPRESSION_COST",
    "Expression",
    "ExpressionError",
    "ExpressionTooExpensive",
    "compile_expression",
    "to_json",
    "too_expensive",
]

#: Cost units one evaluation (one expression on one item) may spend: five times a connection
#: condition's, since a plugin runs in an activity, not in a workflow task; about 0.5 s of CPU
#: (1 s on a loaded two-core machine). A macro with a simple body over about 4,000 elements
#: fits.
MAX_EXPRESSION_COST = 100_000
#: Distinct expression texts whose compiled form is kept (the processors of a Streaming run
#: are called once per micro-batch with the same expressions).
COMPILED_CACHE_SIZE = 256


class ExpressionTooExpensive(ExpressionError):
    """An evaluation needed more than :data:`MAX_EXPRESSION_COST` units."""


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression; :meth:`evaluate` returns a plain JSON value."""

    text: str
    _program: MeteredProgram

    def evaluate(self, variables: dict[str, Any]) -> Any:
        """Evaluate with ``variables`` (JSON values) bound; the result as a JSON value.

        Metered, with a budget of :data:`MAX_EXPRESSION_COST` units (module docstring).

        Raises:
            ExpressionTooExpensive: the evaluation needs more than the budget.
            ExpressionError: unknown variable, type mismatch, division by zero, overflow, or
                a result JSON cannot hold (NaN, infinity, a type).
        """
        try:
            result = self._program.run(variables, MAX_EXPRESSION_COST)
        except CELEvalError as exc:
            raise ExpressionError(_eval_message(exc, variables)) from None
        except BudgetExceeded:
            raise ExpressionTooExpensive(
                f"is too expensive: it needs more than {MAX_EXPRESSION_COST:,} cost units, "
                "the budget of one evaluation"
            ) from None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise ExpressionError(f"cannot evaluate: {exc}") from None
        if isinstance(result, CELEvalError):
            raise ExpressionError(_eval_message(result, variables))
        return to_json(result)

    def evaluate_bool(self, variables: dict[str, Any]) -> bool:
        """Evaluate a condition: the result must be a boolean."""
        result = self.evaluate(variables)
        if not isinstance(result, bool):
            kind = "null" if result is None else type(result).__name__
            raise ExpressionError(f"result is {kind}, not a boolean")
        return result


def too_expensive(
    key: str, expression: Expression, index: int, error: ExpressionTooExpensive
) -> PluginError:
    """The processors' error for an expression too expensive for item ``index``: a
    non-retryable ``PluginExecutionFailed`` naming the configuration key, the expression and
    the budget (the same expression would be as expensive on every try)."""
    return PluginError(
        PluginErrorCode.PluginExecutionFailed,
        f"'{key}' ({expression.text!r}) {error} on item {index}: nested macros, macros over "
        "long lists and long strings cost most; simplify it or compute the value upstream",
        {"index": index, "key": key, "budget": MAX_EXPRESSION_COST},
    )


def compile_expression(text: Any) -> Expression:
    """Compile a CEL expression (the compiled form of recent texts is cached).

    Raises:
        ExpressionError: not a string, empty, too long, nested too deeply, or not valid CEL.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"must be a string, got {type(text).__name__}")
    return _compile(text)


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compile(text: str) -> Expression:
    """Compile ``text`` (an Expression is immutable and safe to share between threads; an
    ExpressionError is not cached). The parse is :func:`engine.language.expressions.parse_cel`,
    which
    registration runs too."""
    return Expression(text=text, _program=metered_program(parse_cel(text), _FUNCTIONS))


def to_json(value: Any) -> Any:
    """A CEL result as plain JSON types: bool, int, float, str, None, list, dict.

    Bytes become base64 text, timestamps RFC 3339 text, durations seconds (``"1.5s"``).

    Raises:
        ExpressionError: a non-finite double, or a value JSON cannot hold.
    """
    if value is None:
        return None
    if isinstance(value, bool | celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.TimestampType | datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, celtypes.DurationType | datetime.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, int):  # IntType and UintType are ints
        return int(value)
    if isinstance(value, float):
        number = float(value)
        if not math.isfinite(number):
            raise ExpressionError(f"result {number!r} is not a JSON number")
        return number
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {_json_key(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    raise ExpressionError(f"result of type {type(value).__name__} cannot be stored as JSON")


def _json_key(key: Any) -> str:
    converted = to_json(key)
    if isinstance(converted, str):
        return converted
    if isinstance(converted, bool):
        return "true" if converted else "false"
    return str(converted)


def _eval_message(exc: Any, variables: dict[str, Any]) -> str:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    text = str(args[0]) if args else str(exc)
    if text.startswith("undeclared reference to"):
        name = text.split("'")[1] if "'" in text else "?"
        available = ", ".join(sorted(variables)) or "none"
        return f"unknown variable or function '{name}' (the item has: {available})"
    if "no matching overload" in text or text == "no such overload":
        return "type mismatch: the operator or function does not apply to these value types"
    if "divide by zero" in text:
        return "division by zero"
    if text == "return error for overflow":
        # cel-python reports every ValueError of a function this way; keep the real reason.
        cause: tuple[Any, ...] = args[2] if len(args) > 2 and isinstance(args[2], tuple) else ()
        detail = str(cause[0]) if cause else "overflow"
        return "integer overflow" if detail == "overflow" else detail[:200]
    return text.splitlines()[0][:200]


# --- the strings extension --------------------------------------------------------------------


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _index(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int, got {type(value).__name__}")
    return int(value)


def _lower_ascii(text: Any) -> celtypes.StringType:
    return celtypes.StringType("".join(c.lower() if c.isascii() else c for c in _string(text)))


def _upper_ascii(text: Any) -> celtypes.StringType:
    return celtypes.StringType("".join(c.upper() if c.isascii() else c for c in _string(text)))


def _trim(text: Any) -> celtypes.StringType:
    return celtypes.StringType(_string(text).strip())


def _replace(text: Any, old: Any, new: Any) -> celtypes.StringType:
    return celtypes.StringType(_string(text).replace(_string(old), _string(new)))


def _split(text: Any, separator: Any) -> celtypes.ListType:
    separator = _string(separator)
    parts = list(_string(text)) if separator == "" else _string(text).split(separator)
    return celtypes.ListType([celtypes.StringType(part) for part in parts])


def _join(items: Any, separator: Any = "") -> celtypes.StringType:
    if not isinstance(items, list):
        raise TypeError(f"expected a list, got {type(items).__name__}")
    return celtypes.StringType(_string(separator).join(_string(item) for item in items))


def _index_of(text: Any, sub: Any) -> celtypes.IntType:
    return celtypes.IntType(_string(text).find(_string(sub)))


def _last_index_of(text: Any, sub: Any) -> celtypes.IntType:
    return celtypes.IntType(_string(text).rfind(_string(sub)))


def _substring(text: Any, start: Any, end: Any = None) -> celtypes.StringType:
    value = _string(text)
    first = _index(start)
    last = len(value) if end is None else _index(end)
    if not 0 <= first <= last <= len(value):
        raise ValueError(f"substring range [{first}, {last}) is outside 0..{len(value)}")
    return celtypes.StringType(value[first:last])


# --- what the string functions cost, from their arguments (module docstring) -----------------


def _units(characters: int, elements: int = 0) -> int:
    """A unit per 256 characters and per 16 elements, as the meter counts."""
    return (characters >> 8) + (elements >> 4)


def _text_price(args: tuple[Any, ...]) -> int:
    return _units(len(args[0])) if args and isinstance(args[0], str) else 0


def _replace_price(args: tuple[Any, ...]) -> int:
    if len(args) != 3 or not all(isinstance(arg, str) for arg in args):
        return 0
    text, old, new = args
    found = text.count(old)  # len(text) + 1 for "": one insertion between every character
    return _units(len(text) + found * len(new))


def _split_price(args: tuple[Any, ...]) -> int:
    if len(args) != 2 or not all(isinstance(arg, str) for arg in args):
        return 0
    text, separator = args
    parts = len(text) + 1 if separator == "" else text.count(separator) + 1
    return _units(len(text)) + parts  # a unit per new string, as per value converted


def _join_price(args: tuple[Any, ...]) -> int:
    if not args or not isinstance(args[0], list):
        return 0
    items = args[0]
    separator = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
    characters = sum(len(item) for item in items if isinstance(item, str))
    return _units(characters + len(separator) * len(items), len(items))


_FUNCTIONS: dict[str, PricedFunction] = {
    "lowerAscii": (_lower_ascii, _text_price),
    "upperAscii": (_upper_ascii, _text_price),
    "trim": (_trim, _text_price),
    "replace": (_replace, _replace_price),
    "split": (_split, _split_price),
    "join": (_join, _join_price),
    "indexOf": (_index_of, _text_price),
    "lastIndexOf": (_last_index_of, _text_price),
    "substring": (_substring, _text_price),
}
