"""A TCP proxy in front of PostgreSQL that can lose the answer to a write: armed, it forwards the next
Execute message to the server and cuts the client's connection before the server's reply comes back.
The server runs (and, outside a transaction block, commits) the statement; the client sees a dropped
connection and cannot know. That is what a network blip, a failover or a killed PgBouncer does to a write
in flight."""

from __future__ import annotations

import asyncio
import struct


class ReplyCutter:
    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.armed = False
        self.cut = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def arm(self, needle: bytes, cut_at: bytes = b"S", starting: bytes = b"") -> None:
        """Lose the reply to the write whose parameters contain `needle` (a token, an id): after a
        message containing it (its Bind), the next message of type `cut_at` whose body starts with
        `starting` is forwarded and the client's connection cut. `S` (Sync) ends a statement outside a
        transaction block, which then commits on its own; `Q` + b"COMMIT" ends a transaction. The needle
        keeps the cut away from whatever else shares the pool (gauges, cache fills)."""
        self.cut.clear()
        self.needle, self.cut_at, self.starting = needle, cut_at, starting
        self.armed = True

    async def _serve(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        lost = asyncio.Event()

        async def client_to_server():
            needle_here = False
            # The start-up packet has no type byte (length first); every later message is type + length.
            length = struct.unpack("!I", await reader.readexactly(4))[0]
            up_writer.write(struct.pack("!I", length) + await reader.readexactly(length - 4))
            if length == 8:  # SSLRequest: the server answers 'N' and the real start-up follows
                length = struct.unpack("!I", await reader.readexactly(4))[0]
                up_writer.write(struct.pack("!I", length) + await reader.readexactly(length - 4))
            while True:
                head = await reader.readexactly(5)
                body = await reader.readexactly(struct.unpack("!I", head[1:])[0] - 4)
                up_writer.write(head + body)
                await up_writer.drain()
                if self.armed and not needle_here and self.needle in body:
                    needle_here = True  # this connection carries the write
                elif self.armed and needle_here and head[:1] == self.cut_at and body.startswith(self.starting):
                    self.armed = False
                    lost.set()
                    writer.transport.abort()  # the client loses its connection, no reply
                    self.cut.set()
                    await asyncio.sleep(1.0)  # let the server run and commit before it sees EOF
                    up_writer.close()
                    return

        async def server_to_client():
            while True:
                data = await up_reader.read(65536)
                if not data:
                    writer.close()
                    return
                if lost.is_set():
                    continue  # the reply to the cut write is dropped
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            writer.transport.abort()
            up_writer.transport.abort()
            self._tasks.discard(task)
