"""Serving the studio with uvicorn, in the caller's event loop, stoppable cleanly.

:func:`serve` runs until cancelled (or until uvicorn sees SIGINT/SIGTERM in the main
thread); :class:`StudioServer` is the same as an object with ``start()``/``stop()``, for
tests and for programs that host the studio next to other work.

The studio binds 127.0.0.1 by default. It refuses a non-loopback address without a token
(anyone who can reach it could start and cancel executions) and a token shorter than
``MIN_TOKEN_LENGTH`` (16) characters (:func:`engine.studio.guard.check_token`), and on a
loopback address it answers only requests whose ``Host`` names a loopback host (a
DNS-rebinding page cannot read it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from typing import Any

import uvicorn

from engine.base.errors import PluginError, PluginErrorCode
from engine.client.orchestrator import AdvancedPluginOrchestrator
from engine.studio.app import create_app, create_hooks_app

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
_SHUTDOWN_GRACE_SECONDS = 3
_HOOKS_CONCURRENCY = 200


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback host without a token.

    Raises:
        PluginError: ``InvalidConfiguration``.
    """
    if not is_loopback(host) and not token:
        raise PluginError(
            PluginErrorCode.InvalidConfiguration,
            f"refusing to serve the studio on {host!r} without a token: anyone who can reach "
            "that address could change definitions and steer executions. Bind 127.0.0.1 "
            "(the default) or set a token (clients then send 'Authorization: Bearer <token>')",
        )


class StudioServer:
    """The studio on ``host:port`` (``port=0``: a free port, see :attr:`port` after
    :meth:`start`); with ``hooks_only``, only its webhook receiver (``orchestrator serve``)."""

    def __init__(
        self,
        orchestrator: AdvancedPluginOrchestrator,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        ui_url: str | None = None,
        token: str | None = None,
        hooks_only: bool = False,
    ) -> None:
        allowed = (*LOOPBACK_NAMES, host) if is_loopback(host) else None
        app: Any
        if hooks_only:
            # Every route checks a hook's signature: no token, wherever it binds; and any Host
            # (a reverse proxy forwards its own name to a loopback port; a DNS-rebinding page
            # gains nothing, as there is nothing to read and it cannot sign).
            app = create_hooks_app(orchestrator)
        else:
            check_binding(host, token)
            app = create_app(orchestrator, ui_url=ui_url, token=token, allowed_hosts=allowed)
        self.host = host
        self.port = port
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=_SHUTDOWN_GRACE_SECONDS,
            # The receiver holds at most this many bodies at once (503 past it).
            limit_concurrency=_HOOKS_CONCURRENCY if hooks_only else None,
        )
        self.server = uvicorn.Server(self.config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving in the background; return once it accepts connections.

        Raises:
            PluginError: ``InvalidConfiguration`` if it cannot bind.
        """
        sock = _bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        config = self.config
        if not config.loaded:
            config.load()
        self.server.lifespan = config.lifespan_class(config)
        self.server.should_exit = False
        # Not Server.serve(): that installs signal handlers, which belong to the program.
        await self.server.startup(sockets=[sock])
        self._task = asyncio.create_task(self._run([sock]), name="studio-server")

    async def _run(self, sockets: list[socket.socket]) -> None:
        try:
            await self.server.main_loop()
        finally:
            await self.server.shutdown(sockets=sockets)

    async def stop(self) -> None:
        """Stop accepting requests, close open event streams (after a short grace) and
        wait until the server is down."""
        if self._task is None:
            return
        self.server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None

    async def wait(self) -> None:
        """Wait until the server stops (cancel to stop it)."""
        if self._task is not None:
            await asyncio.shield(self._task)


def _bind(host: str, port: int) -> socket.socket:
    name = host.strip("[]")
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((name, port))
    except OSError as exc:
        sock.close()
        raise PluginError(
            PluginErrorCode.InvalidConfiguration,
            f"the studio cannot listen on {host}:{port}: {exc.strerror or exc}",
        ) from None
    sock.set_inheritable(True)
    return sock


async def serve(
    orchestrator: AdvancedPluginOrchestrator,
    host: str = "127.0.0.1",
    port: int = 8080,
    ui_url: str | None = None,
    token: str | None = None,
) -> None:
    """Serve the studio until cancelled (Ctrl+C in the CLI), then stop cleanly.

    Raises:
        PluginError: ``InvalidConfiguration`` for a non-loopback ``host`` without ``token``,
            or an address it cannot bind.
    """
    server = StudioServer(orchestrator, host, port, ui_url=ui_url, token=token)
    await server.start()
    try:
        await server.wait()
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await server.stop()
