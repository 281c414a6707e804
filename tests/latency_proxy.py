"""A TCP proxy that puts a server farther away: every chunk, each way, is forwarded `delay` seconds
after it arrived, in order. An instance given the proxy's address sees Redis as from another zone."""

from __future__ import annotations

import asyncio
import contextlib
import time


class LatencyProxy:
    def __init__(self, host: str, port: int, delay: float):
        self.upstream = (host, port)
        self.delay = delay
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, client_reader, client_writer) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        self.writers |= {client_writer, upstream_writer}
        for source, sink in ((client_reader, upstream_writer), (upstream_reader, client_writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        # Reading and sending are separate, so a chunk is late by `delay` and not by the ones before it.
        queue: asyncio.Queue = asyncio.Queue()

        async def send():
            while (item := await queue.get()) is not None:
                due, data = item
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                sink.write(data)
                await sink.drain()

        sender = asyncio.create_task(send())
        try:
            while data := await source.read(65536):
                queue.put_nowait((time.monotonic() + self.delay, data))
            queue.put_nowait(None)
            await sender
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            sink.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()
        for task in list(self.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
