"""Ending the Temporal SDK's native side before the interpreter finalizes.

Why: the SDK's Rust core hands each RPC result to asyncio from a Tokio thread that takes the
GIL (a pyo3 ``Python::attach`` in a blocking task). A short script's main thread can reach
interpreter finalization microseconds after its last call returned, while that thread is
still inside its callback, preempted and waiting to take the GIL back. Once finalization
has begun, CPython (3.11) ends such a thread with ``pthread_exit`` as soon as it is handed
the GIL; the forced unwind runs pyo3's GIL guard, whose ``PyGILState_Release`` aborts the
process: ``Fatal Python error: PyGILState_Release: thread state ... must be current when
releasing``, exit code 134, after the script printed correct results (temporalio issue
#300). The SDK's default runtime lives in a module global, so its threads always live into
finalization: nothing a script does afterwards (``gc.collect()``, a sleep) can be more than
a delay that usually wins the race.

The fix: every client this engine connects for an orchestrator, the sync facade, the CLI or
a worker process runs on a runtime of its own (:func:`new_runtime`). Releasing it
(:func:`release_runtime`) drops the engine's reference and collects the garbage cycles
around the client; the last reference to the native runtime then shuts Tokio down with the
GIL released, which joins every Tokio thread after its callback returned. ``close()`` of
the orchestrator and of the sync facade does this while their loop still runs. For
programs that never call ``close()``, an exit hook runs the closers registered with
:func:`close_at_exit`, then releases every runtime still owned, clearing first the frames
of an uncaught exception's traceback (they hold the client of the call that failed).

The hook runs where the interpreter stops its threads (``threading._register_atexit``, as
:mod:`concurrent.futures` does), before the thread pools refuse work: a hosted worker
still needs them to finish its executions. So it runs before ``atexit`` handlers, which
find orchestrators left open already closed.
"""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401  (registers its exit hook first: ours runs before)
import gc
import itertools
import sys
import threading
import traceback
from collections.abc import Callable

from temporalio.runtime import Runtime, TelemetryConfig

# Runtimes created here and not yet released, by key (strong references: the engine owns
# them).
_owned: dict[int, Runtime] = {}
# What to close at interpreter exit, in order of registration.
_closers: dict[int, Callable[[], None]] = {}
_tokens = itertools.count()


def new_runtime() -> tuple[int, Runtime]:
    """A Temporal SDK runtime owned by the engine (the SDK default's telemetry) and the key
    to give back to :func:`release_runtime`. Hand the runtime to
    :func:`engine.hosting.connection.connect` and keep only the key: a reference kept elsewhere
    would keep the runtime alive."""
    runtime = Runtime(telemetry=TelemetryConfig())
    _owned[id(runtime)] = runtime
    return id(runtime), runtime


def release_runtime(key: int) -> None:
    """Give up the engine's reference to the runtime of ``key`` and free it with its
    clients: now if nothing else references them (its Tokio threads are joined before this
    returns), else at interpreter exit. Call it once the clients on it are no longer used."""
    if _owned.pop(key, None) is not None:
        gc.collect()


def close_at_exit(closer: Callable[[], None]) -> int:
    """Run ``closer`` at interpreter exit unless :func:`cancel_close_at_exit` is called with
    the returned token first. Closers run in reverse order of registration."""
    token = next(_tokens)
    _closers[token] = closer
    return token


def cancel_close_at_exit(token: int) -> None:
    """Forget a closer registered with :func:`close_at_exit` (it was closed already)."""
    _closers.pop(token, None)


def _clear_frames(error: BaseException | None, seen: set[int]) -> None:
    """Clear the local variables of the frames in ``error``'s tracebacks, its causes and
    contexts included (the traceback has been printed; the frames only keep objects alive)."""
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                _clear_frames(inner, seen)
        _clear_frames(error.__cause__, seen)
        error = error.__context__


def _at_exit() -> None:
    while _closers:
        _token, closer = _closers.popitem()
        try:
            closer()
        except Exception as exc:  # exiting anyway: say what failed, close the rest
            print(f"error while closing at exit: {exc}", file=sys.stderr)
    if _owned:
        _owned.clear()
        _clear_frames(getattr(sys, "last_value", None), set())
        gc.collect()


def _register_exit_hook() -> None:
    # CPython's hook that runs before the thread pools shut down; atexit where it is absent.
    register = getattr(threading, "_register_atexit", atexit.register)
    register(_at_exit)


_register_exit_hook()
