"""A cheap bound on the size of a JSON-like value, for the checks that run on every node call.

:func:`is_small` walks at most ``values`` values and stops as soon as the budget is spent, so
it costs little on any input (huge, deep or self-referencing). A value it calls small holds
at most ``values`` values whose strings and keys hold at most ``chars`` characters in all,
and is plain JSON as far as types go: its JSON text is at most ``12 * chars + 32 * values``
bytes (every character escaped, a character outside the BMP as two ``\\uXXXX``, every
number at its longest). Anything else is not small, and the caller measures or checks it
fully.
"""

from __future__ import annotations

from typing import Any


def is_small(value: Any, values: int, chars: int) -> bool:
    """Whether ``value`` fits the budget (see the module docstring). Exact types only (a
    subclass of dict, str or int is not small): ``type() is`` costs the same everywhere, while
    ``isinstance`` goes through a wrapper in Temporal's workflow sandbox, where this runs for
    every node call."""
    pending = [value]
    while pending:
        current = pending.pop()
        kind = type(current)
        if kind is dict:
            values -= len(current)
            if values < 0:
                return False
            for key, item in current.items():
                if type(key) is not str:
                    return False
                chars -= len(key)
                pending.append(item)
        elif kind is list:
            values -= len(current)
            if values < 0:
                return False
            pending.extend(current)
        elif kind is str:
            chars -= len(current)
        elif not (current is None or kind is bool or kind is int or kind is float):
            return False
        if chars < 0:
            return False
    return True


def json_bytes_bound(values: int, chars: int) -> int:
    """The most bytes of JSON text a value small by ``values`` and ``chars`` can take."""
    return 12 * chars + 32 * values
