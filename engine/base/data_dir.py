"""Where the engine keeps its files by default: the embedded server's database, blobs, the
outputs of built-in sinks. Below everything that writes there, so each can ask."""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA_DIR = "ORCHESTRATOR_DATA_DIR"


def default_data_dir() -> Path:
    """``ORCHESTRATOR_DATA_DIR``, else ``$XDG_DATA_HOME`` (or ``~/.local/share``) joined with
    ``plugin-orchestrator``."""
    configured = os.environ.get(ENV_DATA_DIR)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "plugin-orchestrator"
