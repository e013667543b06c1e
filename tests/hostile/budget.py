"""CPU and memory budgets of one hostile case, measured separately (tracemalloc slows Python
code several times over, so CPU is measured without it)."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A validation-level refusal: well under a workflow task's budget, and what a client waits.
CPU_SECONDS = 0.5
# Evaluation of a condition that is stopped by its meter: MAX_CONDITION_COST is sized for
# about 0.3 s on a slow machine; the margin absorbs a loaded CI box (two shared cores).
EVALUATION_CPU_SECONDS = 1.0
PEAK_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Measured:
    """What one call did: its result or exception, CPU seconds, peak traced bytes."""

    result: Any
    error: BaseException | None
    cpu: float
    peak: int


def measure(call: Callable[[], Any]) -> Measured:
    """Run ``call`` twice: once timed (process CPU time), once under tracemalloc. The garbage
    collector is off meanwhile, so neither figure includes collecting earlier garbage."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.process_time()
        result, error = _outcome(call)
        cpu = time.process_time() - start
        tracemalloc.start()
        try:
            _outcome(call)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        if enabled:
            gc.enable()
    return Measured(result, error, cpu, peak)


def _outcome(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return call(), None
    except Exception as exc:  # the tests look at what was raised
        return None, exc
