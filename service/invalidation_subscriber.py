"""The near cache's subscription to the invalidation channel, as a plain asyncio Protocol.

Why not redis-py's PubSub: it hands a message to the application only when the listening task next
runs, one or more event-loop iterations after the bytes arrived. A request that arrives in that gap
(the write's answer reached a client that at once reads from this instance) would be served a near
copy that was already invalidated. Here the invalidation is applied inside `data_received`, which the
event loop calls as soon as the socket is readable and before any task it wakes runs: a request that
arrived after the message can never see the dropped copy. (The message leaves Redis before the
writer's own reply does, so on any sane network it arrives before a request caused by that reply.)

Only what a subscriber needs of RESP2 is parsed: arrays of bulk strings and integers, simple strings
and errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

PING_EVERY = 5.0  # seconds; a subscriber that hears nothing for two periods is considered lost


class _Incomplete(Exception):
    pass


def _parse(buf: bytes | bytearray, pos: int):
    """One RESP2 value from buf[pos:]: (value, next position); _Incomplete when it is not all there."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line = buf[pos:pos + 1], bytes(buf[pos + 1:end])
    pos = end + 2
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return bytes(buf[pos:pos + size]), pos + size + 2
    if kind == b"*":
        items = []
        for _ in range(max(0, int(line))):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == b":":
        return int(line), pos
    if kind == b"+":
        return line, pos
    if kind == b"-":
        return RuntimeError(line.decode(errors="replace")), pos
    raise ValueError(f"unexpected RESP type {kind!r}")


def _command(*parts: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self, on_message: Callable[[bytes], None]):
        self.on_message = on_message
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.subscribed = loop.create_future()
        self.closed = loop.create_future()
        self.last_heard = time.monotonic()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        self.buffer += data
        pos = 0
        try:
            while pos < len(self.buffer):
                value, pos = _parse(self.buffer, pos)
                self._handle(value)
        except _Incomplete:
            pass
        except Exception as exc:  # a protocol error: drop the connection, the owner reconnects
            self._fail(exc)
            return
        del self.buffer[:pos]

    def _handle(self, value) -> None:
        if isinstance(value, RuntimeError):
            self._fail(value)
        elif isinstance(value, list) and value and value[0] == b"message":
            self.on_message(value[2])
        elif isinstance(value, list) and value and value[0] == b"subscribe" and not self.subscribed.done():
            self.subscribed.set_result(True)

    def _fail(self, exc: Exception) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc) -> None:
        error = exc or ConnectionError("subscriber connection closed")
        if not self.subscribed.done():
            self.subscribed.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(error)


class Subscription:
    """One connection subscribed to one channel; `on_message` runs synchronously for each message."""

    def __init__(self, protocol: _Protocol):
        self.protocol = protocol

    @classmethod
    async def open(cls, address: dict, channel: str, on_message: Callable[[bytes], None],
                   timeout: float) -> Subscription:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            if address.get("path"):
                _, protocol = await loop.create_unix_connection(lambda: _Protocol(on_message), address["path"])
            else:
                _, protocol = await loop.create_connection(lambda: _Protocol(on_message), address["host"],
                                                           int(address["port"]))
        subscription = cls(protocol)
        try:
            async with asyncio.timeout(timeout):
                if address.get("password"):
                    auth = [address["username"]] if address.get("username") else []
                    protocol.transport.write(_command("AUTH", *auth, address["password"]))
                protocol.transport.write(_command("SUBSCRIBE", channel))
                await protocol.subscribed
        except BaseException:
            subscription.close()
            raise
        return subscription

    async def wait_lost(self, stop: Callable[[], bool]) -> None:
        """Until the connection is lost, goes silent, or `stop()` is true (checked every second)."""
        last_ping = time.monotonic()
        while not stop():
            try:
                error = await asyncio.wait_for(asyncio.shield(self.protocol.closed), 1.0)
                raise error if isinstance(error, BaseException) else ConnectionError(str(error))
            except TimeoutError:
                pass
            now = time.monotonic()
            if now - self.protocol.last_heard > 2 * PING_EVERY:
                raise ConnectionError("subscriber heard nothing (not even a PING's answer)")
            if now - last_ping >= PING_EVERY:
                self.protocol.transport.write(_command("PING"))
                last_ping = now

    def close(self) -> None:
        if self.protocol.transport is not None:
            self.protocol.transport.close()


async def master_address(client) -> dict:
    """Where `client` (redis.asyncio.Redis) sends commands: its master's address with Sentinel."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    address = {k: kwargs.get(k) for k in ("host", "port", "path", "password", "username")}
    if hasattr(pool, "get_master_address"):  # SentinelConnectionPool
        address["host"], address["port"] = await pool.get_master_address()
    return address
