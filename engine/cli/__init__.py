"""``orchestrator``: the command line of the engine.

    orchestrator validate examples/quickstart.json
    orchestrator run examples/quickstart.json --follow
    orchestrator status <execution-id>
    orchestrator worker
    orchestrator server start | stop | status

With no ``--address`` (and no ``TEMPORAL_ADDRESS``) the CLI uses the server on 127.0.0.1:7233
or starts the embedded one there, detached (see :mod:`engine.hosting.embedded`); commands that need
a
worker run one in-process unless a worker already polls the task queue.

Exit codes: 0 success (``run``: the execution completed), 1 a :class:`PluginError` or a
failed/cancelled execution, 2 usage errors (and ``run --detach`` without a worker),
130 interrupted.

The package: :mod:`engine.cli.parser` (the arguments, importing nothing of the engine),
:mod:`engine.cli.definitions`, :mod:`engine.cli.runs`, :mod:`engine.cli.schedules` and
:mod:`engine.cli.hosting` (the commands, by area), :mod:`engine.cli.common` (what they
share). A command's module is imported when it runs, so ``--help`` starts in a fraction of
the time a command takes.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from engine.base.errors import PluginError
from engine.cli.errors import UsageError
from engine.cli.parser import build_parser

__all__ = ["UsageError", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code.

    Args:
        argv: Arguments without the program name (default ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        handler = _load(args.handler)
        common = importlib.import_module("engine.cli.common")
        common.fill_defaults(args)
        if args.command != "worker":
            common.quiet_logging()
        result = handler(args)
        return asyncio.run(result) if inspect.iscoroutine(result) else int(result)
    except PluginError as exc:
        print(f"error: {exc.code.value}: {exc.message}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): no traceback, and no flush error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _load(handler: str) -> Callable[..., Any]:
    """The command function named ``module:function`` in this package."""
    module, _, name = handler.partition(":")
    command: Callable[..., Any] = getattr(importlib.import_module(f"engine.cli.{module}"), name)
    return command
