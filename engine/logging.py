"""structlog set-up, done once per process: JSON lines in production, pretty in a terminal."""

from __future__ import annotations

import logging
import os
import sys

import structlog

_configured = False


def configure_logging(level: str | None = None, *, json: bool | None = None) -> None:
    """Configure structlog and the standard library's logging (idempotent).

    Args:
        level: Log level name; default ``ORCHESTRATOR_LOG_LEVEL`` or ``INFO``.
        json: JSON lines if True, pretty console output if False; default: JSON unless
            stderr is a terminal, overridable with ``ORCHESTRATOR_LOG_FORMAT=json|console``.
    """
    global _configured
    if _configured:
        return
    _configured = True
    level_name = (level or os.environ.get("ORCHESTRATOR_LOG_LEVEL") or "INFO").upper()
    if json is None:
        fmt = os.environ.get("ORCHESTRATOR_LOG_FORMAT", "")
        json = fmt == "json" or (fmt != "console" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level_name, logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=level_name, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
