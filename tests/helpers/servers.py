"""Dev servers with Temporal's limits changed by dynamic config, for tests that reach them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.hosting.devserver import DevServer, free_port


@contextmanager
def configured_server(data_dir: Path, **dynamic_config: int) -> Iterator[DevServer]:
    """A dev server on ``data_dir`` with ``--dynamic-config-value key=value`` for each entry
    (keys are Temporal's, e.g. ``limit.historyCount.error``), stopped on exit."""
    args: list[str] = []
    for key, value in dynamic_config.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    server = DevServer(data_dir, port=free_port(), ui_port=0, extra_args=args)
    server.start()
    try:
        yield server
    finally:
        server.stop()
