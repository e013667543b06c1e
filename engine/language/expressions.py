"""Configuration fields that hold expressions, declared in a plugin's model and compiled at
registration.

A plugin marks a configuration field as an expression with one of the annotations below
(exported by :mod:`plugins`): its JSON Schema, published in the worker's catalog, then
carries ``"x-expression": "<language>"`` (on the values of a mapping of field to
expression). The catalog check at registration (:mod:`engine.temporal.catalog`), the studio's live
check and ``orchestrator validate`` compile every value under such a marker with the
compiler the built-ins use at run time, so an expression that cannot compile is refused
before anything runs, naming node and field::

    class Config(BaseModel):
        condition: CelExpression                       # "x-expression": "cel"
        set: dict[str, CelExpression] | None = None    # the marker on the values

Languages (:func:`expression_problem`):

* ``cel``: CEL as the built-in processors evaluate it (:mod:`plugins.builtin._cel`:
  ``data_filter``, ``data_transformer``): CEL's standard functions and macros plus the
  strings extension. At registration the text must compile as at run time and, beyond that,
  call no function neither has, use no reserved name (``__...``) and give ``matches()``
  constant patterns in RE2 syntax: each of those fails every evaluation at run time.
* ``cel-condition``: a condition as :func:`engine.language.conditions.compile_condition` compiles
  it at run time (``data_processor``'s ``filter``), checked with its registration rules
  (``strict=True``), as connection conditions are.
* ``jmespath``: a JMESPath expression (``json_transform``), compiled with
  ``jmespath.compile``; its functions and their number of arguments are checked too (JMESPath
  finds those only when it first evaluates, and the plugin then fails).

A language this release does not know (a newer worker's) is not checked.

This module imports no plugin code: clients check definitions against the catalog alone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

import celpy
import jmespath  # type: ignore[import-untyped]
import jmespath.exceptions  # type: ignore[import-untyped]
import jmespath.functions  # type: ignore[import-untyped]
import lark
from celpy.celparser import CELParseError
from pydantic import GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# The registration rules of conditions, applied to the plugins' CEL too (module docstring).
from engine.language.conditions import (
    MAX_CONDITION_LENGTH,
    MAX_CONDITION_NESTING,
    ConditionError,
    _check_pattern,
    _inspect,
    compile_condition,
)

#: The JSON Schema keyword that marks a configuration value as an expression.
EXPRESSION_KEYWORD = "x-expression"
#: CEL as the built-in processors evaluate it (:mod:`plugins.builtin._cel`).
CEL = "cel"
#: A CEL condition as :func:`engine.language.conditions.compile_condition` compiles it.
CEL_CONDITION = "cel-condition"
#: A JMESPath expression.
JMESPATH = "jmespath"

#: The functions :mod:`plugins.builtin._cel` adds to CEL (the strings extension).
STRINGS_EXTENSION = frozenset(
    {
        "lowerAscii",
        "upperAscii",
        "trim",
        "replace",
        "split",
        "join",
        "indexOf",
        "lastIndexOf",
        "substring",
    }
)

# Texts whose verdict is kept: definitions repeat the same expressions across nodes.
_VERDICT_CACHE_SIZE = 1024
# Characters of an expression quoted in a problem.
_SHOWN = 80


@functools.cache
def _env() -> celpy.Environment:
    """Built on first use (it builds the CEL parser)."""
    return celpy.Environment()


_JMESPATH_FUNCTIONS: dict[str, Any] = jmespath.functions.Functions().FUNCTION_TABLE


class ExpressionError(ValueError):
    """An expression could not be compiled, evaluated, or its result converted to JSON."""


@dataclass(frozen=True, slots=True)
class ExpressionField:
    """Pydantic metadata marking a string as an expression in ``language``: its JSON Schema
    carries ``"x-expression": language``."""

    language: str

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema[EXPRESSION_KEYWORD] = self.language
        return schema


#: A CEL expression as the built-in processors evaluate it (compiled at registration).
CelExpression = Annotated[str, StringConstraints(min_length=1), ExpressionField(CEL)]
#: A CEL condition as connection conditions are compiled (compiled at registration).
CelCondition = Annotated[str, StringConstraints(min_length=1), ExpressionField(CEL_CONDITION)]
#: A JMESPath expression (compiled at registration).
JmesPathExpression = Annotated[str, StringConstraints(min_length=1), ExpressionField(JMESPATH)]


def parse_cel(text: str) -> lark.Tree[Any]:
    """Parse a CEL expression of the built-in processors, after the checks that keep the
    recursive parser safe; what :mod:`plugins.builtin._cel` compiles at run time.

    Raises:
        ExpressionError: empty, too long, nested too deeply, or not valid CEL.
    """
    if not text.strip():
        raise ExpressionError("is empty")
    if len(text) > MAX_CONDITION_LENGTH:
        raise ExpressionError(
            f"is {len(text)} characters long; the limit is {MAX_CONDITION_LENGTH}"
        )
    depth = _max_nesting(text)
    if depth > MAX_CONDITION_NESTING:
        raise ExpressionError(f"nests {depth} levels deep; the limit is {MAX_CONDITION_NESTING}")
    try:
        return _env().compile(text)
    except CELParseError as exc:
        raise ExpressionError(f"is not valid CEL: {_syntax_error(exc)}") from None
    except RecursionError:
        raise ExpressionError("nests too deeply") from None
    except Exception as exc:  # the parser raises lark errors of several kinds
        raise ExpressionError(f"is not valid CEL: {type(exc).__name__}: {exc}") from None


def expression_problem(language: str, text: Any) -> str | None:
    """Why ``text`` would not compile as an expression in ``language`` (a phrase that
    starts with the quoted text), or None if it would (or the language is unknown here)."""
    if not isinstance(text, str):
        return None  # the schema's type check reports it
    reason = _reason(language, text)
    if reason is None:
        return None
    shown = text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."
    return f"{shown!r} {reason}"


@functools.lru_cache(maxsize=_VERDICT_CACHE_SIZE)
def _reason(language: str, text: str) -> str | None:
    if language == CEL:
        return _cel_reason(text)
    if language == CEL_CONDITION:
        return _condition_reason(text)
    if language == JMESPATH:
        return _jmespath_reason(text)
    return None


def _cel_reason(text: str) -> str | None:
    try:
        shape = _inspect(parse_cel(text))
    except ExpressionError as exc:
        return str(exc)
    if shape.reserved:
        _, name = min(shape.reserved)
        return f"uses the reserved name '{name}' (CEL reserves names starting with '__')"
    unknown = sorted((at, name) for at, name in shape.unknown if name not in STRINGS_EXTENSION)
    if unknown:
        name = unknown[0][1]
        return (
            f"calls '{name}', which is neither a CEL function nor one of the strings "
            f"extension ({', '.join(sorted(STRINGS_EXTENSION))})"
        )
    for pattern in shape.patterns:
        try:
            _check_pattern(pattern)
        except ConditionError as exc:
            return f"is refused: {exc}"
    return None


def _condition_reason(text: str) -> str | None:
    try:
        compile_condition(text, strict=True)
    except ConditionError as exc:
        reason = str(exc)
    else:
        return None
    if reason.startswith("not valid CEL"):
        return f"is not valid CEL: {_cel_syntax(text) or reason.removeprefix('not valid CEL: ')}"
    if reason.startswith("condition "):
        return reason.removeprefix("condition ")
    return f"is refused: {reason}"


def _jmespath_reason(text: str) -> str | None:
    try:
        parsed = jmespath.compile(text).parsed
    except jmespath.exceptions.JMESPathError as exc:
        return f"is not valid JMESPath: {_jmespath_syntax(exc)}"
    except RecursionError:  # the parser is recursive
        return "nests too deeply"
    return _jmespath_call_problem(parsed)


def _jmespath_syntax(exc: Exception) -> str:
    """What the parser says, and where (its message repeats the text over several lines)."""
    position = getattr(exc, "lex_position", None)
    if isinstance(exc, jmespath.exceptions.IncompleteExpressionError):
        return "the expression is incomplete"
    if isinstance(exc, jmespath.exceptions.LexerError):
        what = str(getattr(exc, "message", "")) or "unexpected character"
    elif isinstance(exc, jmespath.exceptions.ParseError):
        token = getattr(exc, "token_value", None)
        what = f"unexpected {token!r}" if token is not None else str(getattr(exc, "msg", ""))
    else:
        return " ".join(str(exc).split())
    return f"{what} at column {position + 1}" if isinstance(position, int) else what


def _jmespath_call_problem(tree: dict[str, Any]) -> str | None:
    """The first call of an unknown function or with a wrong number of arguments."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("type") == "function_expression":
            name = str(node.get("value"))
            arguments = len(node.get("children", []))
            entry = _JMESPATH_FUNCTIONS.get(name)
            if entry is None:
                return f"calls '{name}', which is not a JMESPath function"
            signature = entry["signature"]
            variadic = bool(signature) and bool(signature[-1].get("variadic"))
            if arguments < len(signature) or (not variadic and arguments != len(signature)):
                expected = f"at least {len(signature)}" if variadic else str(len(signature))
                return f"calls '{name}' with {arguments} argument(s); it takes {expected}"
        stack.extend(child for child in node.get("children", []) if isinstance(child, dict))
    return None


def _syntax_error(exc: CELParseError) -> str:
    """Where the parser stopped (celpy's message is the text with a caret under it)."""
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if isinstance(line, int) and isinstance(column, int):
        where = f"column {column}" if line == 1 else f"line {line}, column {column}"
        return f"syntax error at {where}"
    first = str(exc).strip().splitlines()
    return first[0] if first else "syntax error"


def _cel_syntax(text: str) -> str | None:
    """The syntax error of ``text``, if the parser reports one."""
    try:
        _env().compile(text)
    except CELParseError as exc:
        return _syntax_error(exc)
    except Exception:  # other parser failures: the caller's message says it
        return None
    return None


def _max_nesting(text: str) -> int:
    """Brackets, or runs of unary operators, nested deepest (before parsing: the parser is
    recursive)."""
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth = max(0, depth - 1)
    run = longest = 0
    for char in text:
        if char in "!-":
            run += 1
            longest = max(longest, run)
        elif not char.isspace():
            run = 0
    return max(deepest, longest)
