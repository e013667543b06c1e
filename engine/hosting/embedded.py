"""The "just works" runtime of the CLI: an embedded Temporal server and an in-process worker.

    address, ui_url = await ensure_server(None, default_data_dir())
    client = await connect(address)
    async with embedded_worker(client, "plugin-orchestrator"):
        ...  # executions on this queue make progress while the block runs

:func:`ensure_server` uses the server it is told about, else one already listening on the
embedded port, else it starts the embedded dev server (:mod:`engine.hosting.devserver`) *detached*:
the
server outlives the CLI so runs and the Temporal UI stay available; ``orchestrator server
stop`` ends it. Its SQLite file lives in the data directory.

:func:`embedded_worker` starts a worker in this process only if no other worker polls the
task queue. Embedded workers identify themselves (``orchestrator-cli:<pid>@<host>``) and are
never counted as "a worker is polling": they stop when their CLI exits.

Environment:

``ORCHESTRATOR_DATA_DIR``          data directory (default ``$XDG_DATA_HOME/plugin-orchestrator``,
                                   i.e. ``~/.local/share/plugin-orchestrator``)
``ORCHESTRATOR_EMBEDDED_PORT``     frontend port of the embedded server (default 7233)
``ORCHESTRATOR_EMBEDDED_UI_PORT``  its web UI port (default 8233; 0 disables the UI)
``TEMPORAL_UI_URL``                UI base URL of a server given by address, for links
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote as urlquote

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType, WorkerStatus
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, ListWorkersRequest
from temporalio.client import Client
from temporalio.service import RPCError

from engine.base.data_dir import default_data_dir
from engine.base.errors import PluginError, PluginErrorCode
from engine.hosting.devserver import DevServer, port_open, stop_detached, wait_until_ready
from engine.temporal.translation import translate_errors

if TYPE_CHECKING:
    from engine.hosting.worker import EngineWorker
    from plugins import PluginRegistry

ENV_EMBEDDED_PORT = "ORCHESTRATOR_EMBEDDED_PORT"
ENV_EMBEDDED_UI_PORT = "ORCHESTRATOR_EMBEDDED_UI_PORT"
ENV_UI_URL = "TEMPORAL_UI_URL"
DEFAULT_PORT = 7233
DEFAULT_UI_PORT = 8233

# Worker identity prefix of CLI-embedded workers (they vanish with their CLI process).
EMBEDDED_IDENTITY_PREFIX = "orchestrator-cli:"
# The server keeps pollers listed for minutes after they stop; an idle worker re-polls at
# least every ~60 s (the long-poll timeout), so a poller not seen within this window is gone.
POLLER_FRESH_SECONDS = 90.0
# A worker that reported its shutdown may still have a poll on its way (it polls until it
# stops, and under load that poll can reach the server after the report): only a poll this
# long after the report shows the identity running again.
SHUTDOWN_SLACK_SECONDS = 2.0
# Pages of ListWorkers read to find shutdown reports (a queue's workers, 100 or so a page).
_MAX_WORKER_PAGES = 10

_RECORD_FILE = "server.json"
# Seconds a server found on the embedded port (perhaps still starting) gets to be ready.
READY_TIMEOUT = 60.0


DATA_DIR = default_data_dir()


def embedded_ports() -> tuple[int, int]:
    """Frontend and UI ports of the embedded server (environment, else 7233 and 8233)."""
    return (
        _int_env(ENV_EMBEDDED_PORT, DEFAULT_PORT),
        _int_env(ENV_EMBEDDED_UI_PORT, DEFAULT_UI_PORT),
    )


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise PluginError(
            PluginErrorCode.InvalidConfiguration, f"{name} must be a port number, got {value!r}"
        ) from None


# -- the embedded server -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    """A detached embedded server, as recorded in its data directory."""

    pid: int
    port: int
    ui_port: int
    db_file: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None


def server_info(data_dir: Path) -> ServerInfo | None:
    """The embedded server started from ``data_dir``, if its process is still alive."""
    try:
        data: dict[str, Any] = json.loads((data_dir / _RECORD_FILE).read_text())
        info = ServerInfo(
            pid=int(data["pid"]),
            port=int(data["port"]),
            ui_port=int(data["ui_port"]),
            db_file=str(data["db_file"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _alive(info.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def start_server(data_dir: Path, port: int, ui_port: int) -> ServerInfo:
    """Start the embedded server detached and record it in ``data_dir`` (blocking).

    Raises:
        PluginError: ``ServerUnavailable`` if it does not come up.
    """
    server = DevServer(data_dir, port=port, ui_port=ui_port)
    server.start(detach=True)
    assert server.process is not None
    info = ServerInfo(
        pid=server.process.pid, port=port, ui_port=ui_port, db_file=str(server.db_file)
    )
    (data_dir / _RECORD_FILE).write_text(json.dumps(dataclasses.asdict(info)))
    # The server is not this process's to reap: forget it, so the Popen object neither
    # warns at exit nor keeps a handle on it.
    server.process.returncode = 0
    return info


def stop_server(data_dir: Path) -> bool:
    """Stop the detached server recorded in ``data_dir``; True if one was running."""
    stopped = stop_detached(data_dir)
    (data_dir / _RECORD_FILE).unlink(missing_ok=True)
    return stopped


async def ensure_server(address: str | None, data_dir: Path) -> tuple[str, str | None]:
    """Find or start a Temporal server; return its address and web UI base URL (if known).

    Args:
        address: ``host:port`` to use as is (no auto-start); default ``TEMPORAL_ADDRESS``.
        data_dir: Where the embedded server keeps its SQLite file, log and pid.

    A server found listening on the embedded port, or started here, is returned only once
    it is ready (:func:`engine.hosting.devserver.wait_until_ready`), never when its port merely
    opens.

    Raises:
        PluginError: ``ServerUnavailable`` if the embedded server cannot be started, or the
            one listening on the embedded port is not ready in time.
    """
    given = address or os.environ.get("TEMPORAL_ADDRESS")
    if given:
        return given, os.environ.get(ENV_UI_URL) or None
    port, ui_port = embedded_ports()
    local = f"127.0.0.1:{port}"
    if port_open("127.0.0.1", port):
        await wait_until_ready(local, timeout=READY_TIMEOUT)
        return local, _known_ui(data_dir, port)
    try:
        info = await asyncio.to_thread(start_server, data_dir, port, ui_port)
    except PluginError:
        if port_open("127.0.0.1", port):  # another CLI started it at the same moment
            await wait_until_ready(local, timeout=READY_TIMEOUT)
            return local, _known_ui(data_dir, port)
        raise
    ui_note = f"; web UI at {info.ui_url}" if info.ui_url else ""
    print(
        f"started the embedded Temporal server at {info.address}{ui_note}\n"
        f"  data: {info.db_file}\n"
        f"  it keeps running in the background; stop it with "
        f"`orchestrator server stop --data-dir {data_dir}`",
        file=sys.stderr,
    )
    return info.address, info.ui_url


def _known_ui(data_dir: Path, port: int) -> str | None:
    info = server_info(data_dir)
    if info is not None and info.port == port:
        return info.ui_url
    return os.environ.get(ENV_UI_URL) or None


def temporal_ui_link(ui_base: str, namespace: str, execution_id: str) -> str:
    """The Temporal web UI page of an execution (execution ids contain ``/``)."""
    ui = ui_base.rstrip("/")
    ns = urlquote(namespace, safe="")
    return f"{ui}/namespaces/{ns}/workflows/{urlquote(execution_id, safe='')}"


# -- the embedded worker -------------------------------------------------------------------


async def worker_is_polling(
    client: Client, task_queue: str, *, include_embedded: bool = False
) -> bool:
    """True if a live worker polls ``task_queue``'s workflow tasks.

    Temporal lists a queue's pollers for minutes after they stop, and an idle live worker's
    entry is up to a long poll (about a minute) old, so recency alone cannot tell a worker
    that exited from one that waits. A poller counts if it polled within
    ``POLLER_FRESH_SECONDS`` and has not reported its shutdown since (give or take
    ``SHUTDOWN_SLACK_SECONDS``): workers send a final heartbeat (status ``SHUTTING_DOWN``)
    when they stop, which ``ListWorkers`` returns. A
    worker that died without stopping (SIGKILL) still counts until its entry is older than
    ``POLLER_FRESH_SECONDS``; a server without ``ListWorkers`` leaves recency as the only test.

    Args:
        client: A connected client.
        task_queue: The queue to look at.
        include_embedded: Also count workers embedded in CLI processes (they stop when
            their CLI exits, so by default they do not count).

    Raises:
        PluginError: ``ServerUnavailable`` if the server cannot be asked.
    """
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    with translate_errors(f"task queue '{task_queue}'"):
        response = await client.workflow_service.describe_task_queue(request)
    now = time.time()
    candidates: dict[str, float] = {}  # identity -> when it last polled
    for poller in response.pollers:
        embedded = poller.identity.startswith(EMBEDDED_IDENTITY_PREFIX)
        if embedded and (not include_embedded or _embedded_worker_gone(poller.identity)):
            continue
        seen = _seconds(poller.last_access_time) if poller.HasField("last_access_time") else 0
        if now - seen <= POLLER_FRESH_SECONDS:
            candidates[poller.identity] = seen
    if not candidates:
        return False
    stopped = await _shutdowns(client, task_queue)
    return any(
        identity not in stopped or stopped[identity] + SHUTDOWN_SLACK_SECONDS < seen
        for identity, seen in candidates.items()
    )


async def _shutdowns(client: Client, task_queue: str) -> dict[str, float]:
    """When each worker identity of ``task_queue`` last reported its shutdown (worker
    heartbeats, ``ListWorkers``); empty where the server does not keep them."""
    stopping = (WorkerStatus.WORKER_STATUS_SHUTTING_DOWN, WorkerStatus.WORKER_STATUS_SHUTDOWN)
    stopped: dict[str, float] = {}
    request = ListWorkersRequest(namespace=client.namespace, query=f"TaskQueue = '{task_queue}'")
    for _page in range(_MAX_WORKER_PAGES):
        try:
            response = await client.workflow_service.list_workers(request)
        except RPCError:
            return stopped  # an older server, or no permission: recency decides alone
        for info in response.workers_info:
            heartbeat = info.worker_heartbeat
            if heartbeat.status in stopping and heartbeat.task_queue == task_queue:
                at = _seconds(heartbeat.heartbeat_time)
                stopped[heartbeat.worker_identity] = max(
                    at, stopped.get(heartbeat.worker_identity, at)
                )
        if not response.next_page_token:
            break
        request.next_page_token = response.next_page_token
    return stopped


def _seconds(timestamp: Timestamp) -> float:
    return timestamp.ToNanoseconds() / 1e9


def _embedded_worker_gone(identity: str) -> bool:
    # "orchestrator-cli:<pid>@<host>": on this host a dead pid means a stopped worker.
    pid, _, host = identity.removeprefix(EMBEDDED_IDENTITY_PREFIX).partition("@")
    return host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


@asynccontextmanager
async def embedded_worker(
    client: Client,
    task_queue: str,
    *,
    graceful_shutdown: float = 5.0,
    plugins: PluginRegistry | None = None,
    force: bool = False,
) -> AsyncIterator[EngineWorker | None]:
    """Run a worker in this process for the block, unless another worker polls the queue.

    Args:
        client: Connected client.
        task_queue: Queue to serve.
        graceful_shutdown: Seconds running nodes get on exit before they are cancelled (and
            retried by the next worker).
        plugins: The worker's plugins (default: the built-ins).
        force: Start one even if another worker polls the queue.

    Yields the worker, or None when an external worker serves the queue.
    """
    if not force and await worker_is_polling(client, task_queue):
        yield None
        return
    identity = f"{EMBEDDED_IDENTITY_PREFIX}{os.getpid()}@{socket.gethostname()}"
    # The worker (activities, plugins, workflow code) loads only when one is hosted: the
    # CLI's reads and `--help` start without it.
    from engine.hosting.worker import create_worker

    worker = create_worker(
        client,
        task_queue=task_queue,
        plugins=plugins,
        graceful_shutdown=graceful_shutdown,
        identity=identity,
    )
    async with worker:
        yield worker
