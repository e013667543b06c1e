"""docs/LIMITS.md names the constants that hold the limits, and states their values."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "LIMITS.md"
# A table row whose first cell names one constant: | `engine.module.NAME` | value | ...
ROW = re.compile(r"^\| `((?:engine|plugins)(?:\.\w+)+)\.(\w+)` \| ([^|]+) \|", re.MULTILINE)


def test_every_limit_in_the_doc_is_a_constant_with_the_stated_value() -> None:
    rows = ROW.findall(DOC.read_text(encoding="utf-8"))
    assert len(rows) >= 15
    for module, name, value in rows:
        constant = getattr(importlib.import_module(module), name)
        number = re.match(r"([\d,]+)( KiB)?", value.strip())
        assert number is not None, (name, value)
        stated = int(number.group(1).replace(",", "")) * (1024 if number.group(2) else 1)
        assert stated == constant, f"{name}: the doc says {value.strip()!r}, the code {constant}"
