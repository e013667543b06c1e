"""Safe conditions for Control connections, in CEL (Common Expression Language).

CEL is side-effect free and not Turing complete: no loops, no calls into Python, no attribute
access beyond the data given. Values are always bound as variables (the top-level keys of the
source node's output), never pasted into the expression text. ``file_valid == true`` is a
complete condition.

Conditions are evaluated inside workflow code, so replay depends on the exact versions of
``cel-python``, ``lark`` and ``google-re2``, which ``pyproject.toml`` pins, and on the rules
below never changing for a run in flight. Hence two sets of rules (``docs/LIMITS.md`` lists
the limits):

* :func:`compile_condition` (what workflow code compiles, on start and on every replay):
  at most :data:`MAX_CONDITION_LENGTH` characters, brackets or runs of unary operators
  nested at most :data:`MAX_CONDITION_NESTING` levels (checked before parsing, because the
  parser is recursive), valid CEL. These rules may be relaxed but never tightened: a stored
  definition must compile in every later release as it did when it was registered.
* ``compile_condition(text, strict=True)`` (registration and modification, through
  :func:`engine.language.validation.validate_workflow`) adds: no non-ASCII characters outside string
  literals (look-alikes such as Cyrillic ``\u0430`` for ``a``); a parse tree at most
  :data:`MAX_CONDITION_DEPTH` levels deep (celpy evaluates recursively, so depth is stack);
  no names starting with ``__`` (reserved by CEL; Python attributes are never reachable
  anyway); no functions CEL does not have (``exec``, celpy's non-standard ``reduce``);
  ``matches()`` patterns in RE2 syntax (RE2 runs in linear time, so there is no ReDoS, but
  it has no back-references or look-arounds); and a condition without variables must
  evaluate to a boolean now (``"1" + 1 == 2`` is refused at registration, not mid-run).

Evaluation is metered: every value of a variable converted, every expression node visited,
every macro iteration, every 256 characters or 16 elements an operator or function handles,
and a ``matches()`` search in proportion to text length times pattern size cost units, and an
evaluation that needs more than :data:`MAX_CONDITION_COST` units stops with an error. The
meter counts, it never reads a clock, so a replay stops at the same step. Only the variables
the condition names are converted. A run whose history predates the meter keeps evaluating
as it did (all variables converted, no meter): :meth:`Condition.evaluate` takes whether to
meter, and the workflow decides it with ``workflow.patched("condition-meter")``, which is
false when replaying a history without the marker (this module stays free of Temporal).

The same meter evaluates the CEL of plugins (:func:`metered_program`, used by
:mod:`plugins.builtin._cel`), with their own budget and functions.
"""

from __future__ import annotations

import functools
import logging
import math
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import celpy
import lark
import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import Activation, CELEvalError, Evaluator, base_functions

from engine.language.models import MAX_JSON_DEPTH

# celpy logs every evaluation error at ERROR level; we report errors ourselves.
logging.getLogger("celpy").setLevel(logging.CRITICAL)

# A condition is a routing rule, not a program: 1,000 characters hold dozens of comparisons.
MAX_CONDITION_LENGTH = 1000
# Brackets (and runs of unary operators) before parsing: the parser is recursive. Part of the
# workflow-side rules, so it stays as first released.
MAX_CONDITION_NESTING = 32
# Levels of the parse tree, at registration: eight levels of brackets (each costs ten), or a
# chain of 90 "&&" or 45 "+". celpy evaluates recursively, about five Python frames per
# level: 100 levels need about 500 frames, half of Python's default recursion limit,
# whatever stack the worker already uses.
MAX_CONDITION_DEPTH = 100
# Work units of one evaluation, about 3 to 10 us each (celpy is pure Python): at most about
# 0.1 s of CPU, 0.2 s on a loaded two-core machine, against the 2 s a workflow task may run.
MAX_CONDITION_COST = 20_000

# CEL's macros (celpy's "reduce" and "min" are not CEL and are refused).
_MACROS = frozenset({"has", "dyn", "all", "exists", "exists_one", "map", "filter"})
_FUNCTIONS = frozenset(name for name in base_functions if name[0].isalpha()) | _MACROS
_RESERVED_PREFIX = "__"
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors are reported by us, not printed to stderr


class ConditionError(ValueError):
    """A condition could not be compiled or evaluated; the message says why."""


class BudgetExceeded(Exception):
    """A metered evaluation ran out of budget (not a CELEvalError, so celpy cannot swallow
    it)."""


#: A function added to CEL for a :class:`MeteredProgram`, with the units one call costs,
#: computed from its arguments before it runs (so a call that would build a huge value is
#: stopped before it does). The estimate must not raise: for arguments of the wrong types it
#: returns 0 and the function itself reports the mismatch.
PricedFunction = tuple[Callable[..., Any], Callable[[tuple[Any, ...]], int]]


@dataclass(frozen=True)
class MeteredProgram:
    """A parsed CEL expression evaluated under a budget of cost units (module docstring).

    Connection conditions and the plugins' expressions (:mod:`plugins.builtin._cel`) both
    evaluate through this one meter.
    """

    _runner: _MeteredRunner
    names: frozenset[str]  # the free variables it reads

    def run(self, variables: Mapping[str, Any], budget: int) -> Any:
        """Evaluate with ``variables`` bound and ``budget`` units to spend; the CEL value.

        Only the variables the expression names are converted (and checked: finite
        numbers, nesting of at most ``MAX_JSON_DEPTH``), each value converted costing a unit.

        Raises:
            BudgetExceeded: The evaluation needs more than ``budget`` units.
            CELEvalError: What celpy raises (or returns) for an evaluation error.
            TypeError, ValueError, OverflowError, RecursionError: A value CEL cannot hold.
        """
        meter = _Meter(budget)
        activation = {
            key: _to_cel(key, value, meter)
            for key, value in variables.items()
            if key.split(".", 1)[0] in self.names
        }
        return self._runner.run(activation, meter)


def metered_program(
    ast: lark.Tree[Any], functions: Mapping[str, PricedFunction] | None = None
) -> MeteredProgram:
    """A :class:`MeteredProgram` of a parse tree (from ``celpy.Environment().compile``), with
    ``functions`` added to CEL's standard ones."""
    runner = _MeteredRunner(_env(), ast, priced=functions)
    return MeteredProgram(_runner=runner, names=_inspect(ast).names)


@dataclass(frozen=True)
class Condition:
    """A compiled condition. Evaluate it with :meth:`evaluate`."""

    text: str
    _metered: MeteredProgram
    _unmetered: Any  # celpy's own runner, for runs that predate the meter

    def evaluate(self, variables: dict[str, Any], *, metered: bool = True) -> bool:
        """Evaluate with ``variables`` bound; the result must be a boolean.

        Metered (see the module docstring): only the variables the condition names are
        converted, and checked (finite numbers, nesting of at most ``MAX_JSON_DEPTH``).
        ``metered=False`` evaluates as runs from before the meter did.

        Raises:
            ConditionError: unknown variable, type mismatch, division by zero, non-boolean
                result, data CEL cannot represent, or more work than ``MAX_CONDITION_COST``.
        """
        try:
            if metered:
                result = self._metered.run(variables, MAX_CONDITION_COST)
            else:
                activation = {key: _to_cel(key, value) for key, value in variables.items()}
                result = self._unmetered.evaluate(activation)
        except CELEvalError as exc:
            raise ConditionError(_eval_message(exc, variables)) from None
        except BudgetExceeded:
            raise ConditionError(
                f"is too expensive: it needs more than {MAX_CONDITION_COST:,} evaluation "
                "steps (large values, macros over long lists, long strings); compute the "
                "value in a node and test the result"
            ) from None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise ConditionError(f"cannot evaluate: {exc}") from None
        if isinstance(result, CELEvalError):
            raise ConditionError(_eval_message(result, variables))
        if not isinstance(result, celtypes.BoolType | bool):
            raise ConditionError(f"result is {_cel_type_name(result)}, not a boolean")
        return bool(result)


def compile_condition(text: str, *, strict: bool = False) -> Condition:
    """Compile a CEL condition; ``strict`` adds the registration rules (module docstring).

    Raises:
        ConditionError: empty, too long, nested too deeply, or not valid CEL; if strict,
            also a non-ASCII name, a reserved name, an unknown function, an invalid
            ``matches()`` pattern, or a constant condition that is not a boolean.
    """
    if not isinstance(text, str):
        raise ConditionError(f"condition must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ConditionError("condition is empty")
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(
            f"condition is {len(text):,} characters long; the limit is {MAX_CONDITION_LENGTH:,}"
        )
    depth, stray = _scan(text)
    if depth > MAX_CONDITION_NESTING:
        raise ConditionError(
            f"condition nests {depth:,} levels deep; the limit is {MAX_CONDITION_NESTING}"
        )
    if strict and stray is not None:
        column, char = stray
        name = unicodedata.name(char, "")
        raise ConditionError(
            f"condition has the non-ASCII character {char!r} (U+{ord(char):04X}"
            f"{' ' + name if name else ''}) at column {column} outside a string literal; "
            "CEL names and operators are ASCII"
        )
    try:
        ast = _env().compile(text)
    except CELParseError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise ConditionError(f"not valid CEL: {first_line}") from None
    except RecursionError:
        raise ConditionError("condition nests too deeply") from None
    except Exception as exc:  # the parser raises lark errors of several kinds
        raise ConditionError(f"not valid CEL: {type(exc).__name__}: {exc}") from None
    shape = _inspect(ast)
    condition = Condition(
        text=text,
        _metered=MeteredProgram(_runner=_MeteredRunner(_env(), ast), names=shape.names),
        _unmetered=_unmetered_env().program(ast),
    )
    if strict:
        _check_shape(shape)
        for pattern_tree in shape.patterns:
            _check_pattern(pattern_tree)
        if not shape.names:
            # The value is known now: a condition that can only fail is refused here, not
            # when a run reaches it.
            try:
                condition.evaluate({})
            except ConditionError as exc:
                raise ConditionError(f"condition has no variables and fails: {exc}") from None
    return condition


# -- before parsing --------------------------------------------------------------------------


def _scan(text: str) -> tuple[int, tuple[int, str] | None]:
    """The deepest nesting of brackets or unary operators outside string literals, and the
    first non-ASCII character outside them (column, character)."""
    depth = deepest = run = longest = 0
    stray: tuple[int, str] | None = None
    index, end = 0, len(text)
    while index < end:
        char = text[index]
        if char in "'\"":
            index = _skip_string(text, index)
            run = 0
            continue
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth = max(0, depth - 1)
        # Unary operators chain without brackets ("!!!!x", "----1"): count runs of them too.
        if char in "!-":
            run += 1
            longest = max(longest, run)
        elif not char.isspace():
            run = 0
        if stray is None and not char.isascii():
            stray = (index + 1, char)
        index += 1
    return max(deepest, longest), stray


def _skip_string(text: str, start: int) -> int:
    """The index after the string literal opening at ``start`` (CEL's quote forms: ' " ''' \"\"\",
    raw when prefixed with r or R); the end of the text if it is not closed."""
    quote = text[start] * 3 if text.startswith(text[start] * 3, start) else text[start]
    prefix = start
    while prefix > 0 and text[prefix - 1] in "rRbB":
        prefix -= 1
    raw = any(c in "rR" for c in text[prefix:start])
    index = start + len(quote)
    while index < len(text):
        if not raw and text[index] == "\\":
            index += 2
        elif text.startswith(quote, index):
            return index + len(quote)
        else:
            index += 1
    return len(text)


# -- after parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """What a parse tree reads and calls (positions are offsets in the text)."""

    names: frozenset[str]  # free variables
    patterns: list[lark.Tree[Any]]  # the pattern arguments of matches() calls
    reserved: list[tuple[int, str]]
    unknown: list[tuple[int, str]]
    depth: int


def _inspect(ast: lark.Tree[Any]) -> _Shape:
    """Walk a parse tree iteratively (it may be deep); never raises, so the workflow-side
    rules stay what they were."""
    names: set[str] = set()
    patterns: list[lark.Tree[Any]] = []
    reserved: list[tuple[int, str]] = []
    unknown: list[tuple[int, str]] = []
    # Each entry: a subtree, its depth, and the macro variables bound where it is.
    stack: list[tuple[lark.Tree[Any], int, frozenset[str]]] = [(ast, 1, frozenset())]
    deepest = 0
    while stack:
        tree, depth, bound = stack.pop()
        deepest = max(deepest, depth)
        tokens = [c for c in tree.children if isinstance(c, lark.Token)]
        for token in tokens:
            if token.type == "IDENT" and str(token).startswith(_RESERVED_PREFIX):
                reserved.append((token.start_pos or 0, str(token)))
        children = [c for c in tree.children if isinstance(c, lark.Tree)]
        if tree.data in ("ident", "dot_ident") and tokens and str(tokens[0]) not in bound:
            names.add(str(tokens[0]))
        elif tree.data in ("ident_arg", "member_dot_arg", "dot_ident_arg") and tokens:
            function = str(tokens[0])
            arguments = _arguments(tree)
            if function not in _FUNCTIONS:
                unknown.append((tokens[0].start_pos or 0, function))
            elif function == "matches":
                # s.matches(p) or matches(s, p): the pattern is the last argument.
                if arguments and (tree.data == "member_dot_arg" or len(arguments) == 2):
                    patterns.append(arguments[-1])
            elif tree.data == "member_dot_arg" and function in _MACROS and len(arguments) >= 2:
                # items.all(x, body): x is bound in the other arguments only.
                variable = _variable(arguments[0])
                inner = bound | {variable} if variable else bound
                stack.extend((c, depth + 1, bound) for c in children if c.data != "exprlist")
                stack.extend((c, depth + 2, inner) for c in arguments[1:])
                continue
        stack.extend((child, depth + 1, bound) for child in children)
    return _Shape(frozenset(names), patterns, reserved, unknown, deepest)


def _check_shape(shape: _Shape) -> None:
    """The registration rules on names, calls and depth; the first problem in the text is
    reported, reserved names before calls."""
    if shape.reserved:
        _, name = min(shape.reserved)
        raise ConditionError(
            f"condition uses the reserved name '{name}' (CEL reserves names starting with "
            "'__'); a condition can only read the source node's output"
        )
    if shape.unknown:
        _, function = min(shape.unknown)
        raise ConditionError(
            f"condition calls '{function}', which is not a CEL function "
            f"(available: {', '.join(sorted(_FUNCTIONS))})"
        )
    if shape.depth > MAX_CONDITION_DEPTH:
        raise ConditionError(
            f"condition nests too deeply: its parse tree has {shape.depth} levels; the limit "
            f"is {MAX_CONDITION_DEPTH} (about eight levels of brackets; each operator in a "
            "chain counts too)"
        )


def _variable(argument: lark.Tree[Any]) -> str | None:
    """The name a macro binds: its first argument, a bare identifier."""
    idents = list(argument.find_data("ident"))
    if len(idents) == 1 and idents[0].children:
        return str(idents[0].children[0])
    return None


def _arguments(call: lark.Tree[Any]) -> list[lark.Tree[Any]]:
    for child in call.children:
        if isinstance(child, lark.Tree) and child.data == "exprlist":
            return [c for c in child.children if isinstance(c, lark.Tree)]
    return []


def _check_pattern(tree: lark.Tree[Any]) -> None:
    """A constant ``matches()`` pattern must be RE2 syntax (a variable one is checked when
    evaluated)."""
    if any(t.data in ("ident", "dot_ident") for t in tree.iter_subtrees()):
        return
    try:
        pattern = _MeteredRunner(_env(), tree).evaluate({})
    except (CELEvalError, BudgetExceeded, TypeError, ValueError):
        return  # the constant evaluation of the whole condition reports it
    if not isinstance(pattern, str):
        raise ConditionError(f"matches() needs a string pattern, got {_cel_type_name(pattern)}")
    try:
        re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        raise ConditionError(
            f"matches() pattern {pattern[:80]!r} is not RE2 syntax: {_re2_reason(exc)} "
            "(RE2 has no back-references or look-arounds)"
        ) from None


def _re2_reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    if isinstance(reason, bytes):
        return reason.decode("utf-8", "replace")
    return str(reason)


# -- metered evaluation ----------------------------------------------------------------------


class _Meter:
    """What one evaluation may still spend."""

    __slots__ = ("left",)

    def __init__(self, units: int) -> None:
        self.left = units

    def charge(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise BudgetExceeded


def _size(value: Any) -> int:
    """Units for handling ``value``: one per 256 characters or bytes, one per 16 elements."""
    if isinstance(value, str | bytes):
        return len(value) >> 8
    if isinstance(value, list | dict):
        return len(value) >> 4
    return 0


class _MeteredEvaluator(Evaluator):
    """celpy's evaluator, charging one unit per node visited and two per macro iteration."""

    def __init__(self, ast: lark.Tree[Any], activation: Activation, meter: _Meter) -> None:
        super().__init__(ast, activation)
        self._meter = meter

    def sub_evaluator(self, ast: lark.Tree[Any]) -> Evaluator:
        return _MeteredEvaluator(ast, self.activation, self._meter)

    def evaluate(self, context: Any = None) -> Any:
        self._meter.charge(2)
        return super().evaluate(context)

    def _visit_tree(self, tree: lark.Tree[Any]) -> Any:
        self._meter.charge(1)
        return super()._visit_tree(tree)


def _charged(
    function: Callable[..., Any], meter: _Meter, cost: Callable[[tuple[Any, ...], Any], int]
) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any) -> Any:
        result = function(*args)
        meter.charge(cost(args, result))
        return result

    return call


def _priced(
    function: Callable[..., Any], meter: _Meter, price: Callable[[tuple[Any, ...]], int]
) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any) -> Any:
        meter.charge(1 + price(args))
        return function(*args)

    return call


def _result_cost(args: tuple[Any, ...], result: Any) -> int:
    return _size(result)


def _compare_cost(args: tuple[Any, ...], result: Any) -> int:
    return min(_size(args[0]), _size(args[1])) if len(args) == 2 else 0


def _container_cost(args: tuple[Any, ...], result: Any) -> int:
    return _size(args[-1]) if args else 0


def _subject_cost(args: tuple[Any, ...], result: Any) -> int:
    return _size(args[0]) if args else 0


def _matches(meter: _Meter) -> Callable[[Any, Any], Any]:
    """CEL's ``matches()`` with RE2, without RE2's logging, charging ``meter``.

    RE2 runs in time linear in the text, but the factor is the size of the compiled pattern
    and reaches about 15 ns per character and instruction when RE2 falls back from its DFA
    to its NFA (``(.{0,100}a){0,10}x`` over 100 KB takes over a second). So a call costs a
    unit per 16 instructions compiled and per 256 character-instructions searched.
    """

    def matches(text: Any, pattern: Any) -> Any:
        if not isinstance(text, str) or not isinstance(pattern, str):
            raise TypeError("matches() takes two strings")
        meter.charge(len(pattern) >> 4)
        try:
            compiled = re2.compile(pattern, _RE2_OPTIONS)
        except re2.error as exc:
            return CELEvalError(
                f"matches() pattern {pattern[:80]!r} is not RE2 syntax: {_re2_reason(exc)}"
            )
        size = compiled.programsize
        meter.charge((size >> 4) + (len(text) * size >> 8))
        return celtypes.BoolType(compiled.search(text) is not None)

    return matches


_COSTS: dict[str, Callable[[tuple[Any, ...], Any], int]] = {
    "_+_": _result_cost,
    "_==_": _compare_cost,
    "_!=_": _compare_cost,
    "_<_": _compare_cost,
    "_<=_": _compare_cost,
    "_>_": _compare_cost,
    "_>=_": _compare_cost,
    "_in_": _container_cost,
    "contains": _subject_cost,
    "startsWith": _container_cost,
    "endsWith": _container_cost,
    "string": _result_cost,
    "bytes": _result_cost,
    "list": _result_cost,
    "map": _result_cost,
}


class _MeteredRunner(celpy.InterpretedRunner):
    """Evaluates with a fresh budget of ``MAX_CONDITION_COST`` units, or charging a given
    meter (:meth:`run`); ``priced`` functions are added to CEL's."""

    def __init__(
        self,
        environment: celpy.Environment,
        ast: lark.Tree[Any],
        functions: Any = None,
        *,
        priced: Mapping[str, PricedFunction] | None = None,
    ) -> None:
        super().__init__(environment, ast, functions)
        self.priced: Mapping[str, PricedFunction] = dict(priced or {})

    def evaluate(self, context: Any) -> Any:
        return self.run(context, _Meter(MAX_CONDITION_COST))

    def run(self, context: Any, meter: _Meter) -> Any:
        """Evaluate, charging ``meter``."""
        functions = {
            name: _charged(base_functions[name], meter, cost) for name, cost in _COSTS.items()
        }
        for name, (function, price) in self.priced.items():
            functions[name] = _priced(function, meter, price)
        functions["matches"] = _matches(meter)
        activation = Activation(
            package=self.environment.package,
            annotations=self.environment.annotations,
            functions=functions,
        )
        return _MeteredEvaluator(self.ast, activation, meter).evaluate(context)


@functools.cache
def _env() -> celpy.Environment:
    """The metered CEL environment, built on first use: building it builds the CEL parser,
    which a client that never compiles a condition (the CLI's reads) should not pay for."""
    return celpy.Environment(runner_class=_MeteredRunner)


@functools.cache
def _unmetered_env() -> celpy.Environment:
    return celpy.Environment()


def prepare() -> None:
    """Build the CEL parser now. Building it reads its grammar file, which workflow code may
    not do (the sandbox refuses ``open``): the worker's workflow module calls this when it is
    imported, outside any workflow."""
    _env()
    _unmetered_env()


# -- values and messages ---------------------------------------------------------------------


def _to_cel(name: str, value: Any, meter: _Meter | None = None) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"value {value!r} of '{name}' is not representable")
    if meter is not None and isinstance(value, dict | list):
        # Count before converting: celpy converts recursively, about 7 us per value.
        meter.charge(_count_values(name, value, MAX_JSON_DEPTH, meter.left + 1))
    return json_to_cel(value)


def _count_values(name: str, value: dict[str, Any] | list[Any], max_depth: int, stop: int) -> int:
    """How many values ``value`` holds, counting no further than ``stop`` (iteratively: the
    value may be deep, or refer to itself).

    Raises:
        ValueError: it nests more than ``max_depth`` levels deep.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    count = 0
    while stack:
        current, depth = stack.pop()
        if depth > max_depth:
            raise ValueError(f"'{name}' nests more than {max_depth} levels deep")
        count += len(current)
        if count >= stop:
            break
        for item in current.values() if isinstance(current, dict) else current:
            if isinstance(item, dict | list) and item:
                stack.append((item, depth + 1))
    return count


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
    if value is None:
        return "null"
    name = type(value).__name__
    return name.removesuffix("Type").lower() or name
