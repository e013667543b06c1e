"""A failing plugin's locals (its inputs and configuration, credentials too) never reach the
logs, even in a process that runs a worker without configuring logging: structlog's default
console tracebacks print every local variable."""

from __future__ import annotations

import re
import subprocess
import sys

from engine.hosting.devserver import DevServer
from tests.helpers.processes import ROOT

SCRIPT = """
import asyncio, sys
import structlog
from engine.hosting.connection import connect
from engine.hosting.worker import create_worker

async def main() -> None:
    client = await connect(sys.argv[1])
    if sys.argv[2] == "worker":
        create_worker(client, task_queue="traceback-locals")
    password = "hunter2-" + "secret"
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger().exception("plugin failed")

asyncio.run(main())
"""


def _stderr(dev_server: DevServer, mode: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, dev_server.address, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # colours


def test_a_process_that_builds_a_worker_logs_no_locals(dev_server: DevServer) -> None:
    control = _stderr(dev_server, "plain")
    assert "hunter2-secret" in control  # structlog's default shows locals: the test can see
    logged = _stderr(dev_server, "worker")
    assert "ValueError: boom" in logged
    assert "hunter2-secret" not in logged
