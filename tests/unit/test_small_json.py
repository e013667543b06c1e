"""engine.language.small_json: the cheap bound holds, and the walk stops early."""

from __future__ import annotations

import json
import random
from typing import Any

from engine.language.small_json import is_small, json_bytes_bound


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -(2**63), 2**63 - 1, rng.randrange(-(10**6), 10**6)])
    if kind == 2:
        return rng.choice([1.5, -1.2345678901234567e-308, 1e308, rng.random()])
    if kind == 3:
        return "".join(rng.choice('a"\\\n\u00e9\U0001f600\x01') for _ in range(rng.randrange(20)))
    if kind == 4:
        return ""
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(6))]
    return {f"k{i}\U0001f600": _random_value(rng, depth + 1) for i in range(rng.randrange(6))}


def test_a_small_value_never_encodes_past_the_bound() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        value = _random_value(rng)
        for values, chars in ((8, 16), (64, 256)):
            if is_small(value, values, chars):
                assert len(json.dumps(value)) <= json_bytes_bound(values, chars)


def test_budgets_and_types() -> None:
    assert is_small({"a": [1, 2, {"b": None}]}, 10, 10)
    assert not is_small({"a": list(range(11))}, 10, 1000)
    assert not is_small({"a": "x" * 11}, 10, 10)
    assert not is_small({1: "int key"}, 10, 10)
    assert not is_small({"when": object()}, 10, 10)
    looped: list[Any] = []
    looped.append(looped)
    assert not is_small(looped, 1000, 1000)  # the budget ends the walk
