"""A loopback TCP proxy between a worker and the server, to cut and slow the network.

Cutting resets every connection through the proxy and every new one until :meth:`heal`: to
the worker it looks like a partition (its calls fail and are retried), while the server
sees a worker that stopped heartbeating. :attr:`delay` holds each chunk back that many
seconds in both directions: a slow link.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.is_cut = False
        self.delay = 0.0
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """Partition: reset every connection, refuse new ones."""
        self.is_cut = True
        for writer in list(self._links):
            writer.transport.abort()

    def heal(self) -> None:
        self.is_cut = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Let the connection handlers end on their own (a cancelled one is logged).
        await asyncio.wait_for(asyncio.gather(*self._handlers, return_exceptions=True), 10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        if self.is_cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:  # the server is down: so is the link
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            for end in (writer, up_writer):
                end.transport.abort()
                self._links.discard(end)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.is_cut:
                    break
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError):
                writer.transport.abort()
