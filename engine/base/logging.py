"""structlog set-up, done once per process: JSON lines in production, pretty in a terminal.

The standard library's records (the Temporal SDK's, libraries') go through the same
renderer, so a worker's output is one format: JSON lines when stderr is not a terminal.
Context bound with ``structlog.contextvars`` (the node activity binds ``execution_id``,
``workflow_id``, ``node_id``, ``plugin_id`` and ``attempt`` while a plugin runs) is added to
both.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

_configured = False


def _console_renderer(colors: bool) -> structlog.dev.ConsoleRenderer:
    # Locals of a failing plugin hold its inputs and configuration (credentials too):
    # tracebacks in a terminal show code, not values.
    return structlog.dev.ConsoleRenderer(
        colors=colors,
        exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
    )


def hide_traceback_locals() -> None:
    """For a process that runs a worker without configuring structlog (an application
    embedding :func:`engine.hosting.worker.create_worker`, a test suite): keep structlog's defaults
    but without the locals its console tracebacks print. A process that configured
    structlog itself keeps its configuration."""
    if structlog.is_configured():
        return
    processors = list(structlog.get_config()["processors"])
    if processors and isinstance(processors[-1], structlog.dev.ConsoleRenderer):
        processors[-1] = _console_renderer(colors=sys.stderr.isatty())
        structlog.configure(processors=processors)


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
        else _console_renderer(colors=sys.stderr.isatty())
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                # The SDK's workflow and activity loggers put their context in ``extra``.
                structlog.stdlib.ExtraAdder(allow=("temporal_workflow", "temporal_activity")),
                timestamper,
                structlog.processors.format_exc_info,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    logging.basicConfig(level=level_name, handlers=[handler])
