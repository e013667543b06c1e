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
    """Whether ``value`` fits the budget (see the module docstring)."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            values -= len(current)
            if values < 0:
                return False
            for key, item in current.items():
                if not isinstance(key, str):
                    return False
                chars -= len(key)
                pending.append(item)
        elif isinstance(current, list):
            values -= len(current)
            if values < 0:
                return False
            pending.extend(current)
        elif isinstance(current, str):
            chars -= len(current)
        elif not (current is None or isinstance(current, bool | int | float)):
            return False
        if chars < 0:
            return False
    return True


def json_bytes_bound(values: int, chars: int) -> int:
    """The most bytes of JSON text a value small by ``values`` and ``chars`` can take."""
    return 12 * chars + 32 * values
