"""The near cache's connection to Redis: subscribed to the invalidation channels, and carrying the
near cache's own commands (lease renewals, acknowledgements) — a plain asyncio Protocol speaking RESP3.

Why not redis-py's PubSub: it hands a message to the application only when the listening task next
runs, one or more event-loop iterations after the bytes arrived. A request that arrives in that gap
would be served a near copy that was already invalidated. Here a message is applied inside
`data_received`, which the event loop calls as soon as the socket is readable and before any task it
wakes runs; the acknowledgement it calls for is written in the same call.

Why RESP3 (`HELLO 3`, Redis 6+): a RESP2 connection in subscribed mode refuses every command but
(UN)SUBSCRIBE and PING; in RESP3 messages come as push frames and any command may be sent between
them. The near cache needs that: its acknowledgements and lease renewals must travel on the very
connection its invalidations arrive on, so that their answers prove what was received before them
(service/cache/near_acks.py). Redis answers commands in order, so replies are matched to commands
first in, first out; push frames are told apart by their type.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class _Incomplete(Exception):
    pass


class Push(list):
    """A RESP3 push frame (`>`): a pub/sub message or (un)subscribe confirmation, never a reply."""


class ReplyError(Exception):
    """An error reply (`-ERR ...`) to one of this connection's commands."""


def _parse(buf: bytes | bytearray, pos: int):
    """One RESP3 value from buf[pos:]: (value, next position); _Incomplete when it is not all there.
    Maps come as flat lists (key, value, ...); errors as ReplyError values."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line = buf[pos:pos + 1], bytes(buf[pos + 1:end])
    pos = end + 2
    if kind in (b"$", b"=", b"!"):  # bulk string, verbatim string, bulk error
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        data = bytes(buf[pos:pos + size])
        pos += size + 2
        return (ReplyError(data.decode(errors="replace")) if kind == b"!" else data), pos
    if kind in (b"*", b">", b"~", b"%", b"|"):  # array, push, set, map, attribute
        count = int(line)
        if count < 0:
            return None, pos
        items = Push() if kind == b">" else []
        for _ in range(count * 2 if kind in (b"%", b"|") else count):
            item, pos = _parse(buf, pos)
            items.append(item)
        if kind == b"|":  # attributes precede the value they describe: skip them
            return _parse(buf, pos)
        return items, pos
    if kind == b":":
        return int(line), pos
    if kind in (b"+", b"(", b","):
        return line, pos
    if kind == b"_":
        return None, pos
    if kind == b"#":
        return line == b"t", pos
    if kind == b"-":
        return ReplyError(line.decode(errors="replace")), pos
    raise ValueError(f"unexpected RESP type {kind!r}")


def command(*parts: str | bytes | int) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


_NO_REPLY_WANTED = None  # the FIFO's slot for a command whose reply nobody awaits (acknowledgements)

OnMessage = Callable[[bytes, bytes, Callable[..., None]], None]
"""on_message(channel, data, send): `send(*command)` writes a command on this very connection, in the
same call, without waiting for its reply."""


class _Protocol(asyncio.Protocol):
    def __init__(self, on_message: OnMessage):
        self.on_message = on_message
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.replies: deque[asyncio.Future | None] = deque()  # one per command sent, in order
        self.subscribed: set[bytes] = set()
        loop = asyncio.get_running_loop()
        self.subscribed_all = loop.create_future()
        self.expected: set[bytes] = set()
        self.closed = loop.create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
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
        if isinstance(value, Push):
            if value and value[0] == b"message":
                self.on_message(value[1], value[2], self.send_quietly)
            elif value and value[0] == b"subscribe":
                self.subscribed.add(value[1])
                if self.subscribed >= self.expected and not self.subscribed_all.done():
                    self.subscribed_all.set_result(True)
            return
        if not self.replies:
            self._fail(ValueError("a reply to no command"))
            return
        waiter = self.replies.popleft()
        if waiter is _NO_REPLY_WANTED:
            if isinstance(value, ReplyError):  # an acknowledgement refused: this connection is not usable
                self._fail(value)
        elif not waiter.done():
            if isinstance(value, ReplyError):
                waiter.set_exception(value)
            else:
                waiter.set_result(value)

    def send(self, parts: tuple, want_reply: bool) -> asyncio.Future | None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("subscriber connection closed")
        waiter = asyncio.get_running_loop().create_future() if want_reply else _NO_REPLY_WANTED
        self.replies.append(waiter)
        self.transport.write(command(*parts))
        return waiter

    def send_quietly(self, *parts: str | bytes | int) -> None:
        """A command whose reply nobody waits for; nothing when the connection is already closing (what
        it would have said is then moot: the owner drops everything the connection vouched for)."""
        if self.transport is not None and not self.transport.is_closing():
            self.send(parts, want_reply=False)

    def _fail(self, exc: Exception) -> None:
        self._settle(exc)
        if self.transport is not None:
            self.transport.close()

    def _settle(self, exc: BaseException) -> None:
        if not self.subscribed_all.done():
            self.subscribed_all.set_exception(exc)
        for waiter in self.replies:
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: an abandoned command must not be logged
        self.replies.clear()

    def connection_lost(self, exc) -> None:
        error = exc or ConnectionError("subscriber connection closed")
        self._settle(error)
        if not self.closed.done():
            self.closed.set_result(error)


class Subscription:
    """One RESP3 connection subscribed to `channels`; `on_message(channel, data, send)` runs
    synchronously for each message, in the order Redis sent them, before any reply that Redis sent
    after them."""

    def __init__(self, protocol: _Protocol):
        self.protocol = protocol

    @classmethod
    async def open(cls, address: dict, channels: list[str], on_message: OnMessage,
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
                hello = ["HELLO", "3"]
                if address.get("password"):
                    hello += ["AUTH", address.get("username") or "default", address["password"]]
                hello_reply = protocol.send(tuple(hello), want_reply=True)
                protocol.expected = {c.encode() for c in channels}
                protocol.transport.write(command("SUBSCRIBE", *channels))  # confirmed by pushes, not replies
                await hello_reply
                await protocol.subscribed_all
        except BaseException:
            subscription.close()
            raise
        return subscription

    async def call(self, *parts: str | bytes | int):
        """A command's reply. Every message Redis published before it ran has been handled by then."""
        return await self.protocol.send(parts, want_reply=True)

    @property
    def lost(self) -> asyncio.Future:
        """Done (with the error) once the connection is closed."""
        return self.protocol.closed

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
