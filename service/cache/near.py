"""Near cache: copies of hot Redis entries kept in process, dropped by invalidations from any instance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ..cache_fence import FLUSH_ALL, pass_fence
from ..invalidation_subscriber import Subscription, master_address
from ..redis_connect import CLUSTER, PLAIN, connect, slot_master, subscriber_options
from .memory import MemoryBackend

if TYPE_CHECKING:
    from .redis_backend import RedisBackend

log = logging.getLogger("service.cache")


class NearCache:
    """Copies of Redis entries kept in this process, so a hot read does not leave it at all.

    A copy is valid only while this process is subscribed to the invalidation channel: every
    invalidation, from any instance, publishes the Redis keys it dropped, and they are dropped here too.
    While the subscription is down (Redis gone, connection lost) the near cache is empty and unused, and
    it starts empty again once resubscribed, so nothing published meanwhile can have been missed. A copy
    lives at most `ttl` seconds and never past its Redis entry's own expiry; the epoch guard of
    MemoryBackend keeps a read that raced an invalidation from storing its old value.
    """

    RESUBSCRIBE_AFTER = 1.0

    def __init__(self, backend: "RedisBackend", url: str, max_entries: int, ttl: float, timeout: float):
        self.backend = backend
        self.memory = MemoryBackend(max_entries)
        self.ttl = ttl
        # Its own connection, without the short socket timeout: a subscriber waits idle between messages.
        # With Sentinel or Cluster it is the connection to the cache slot's master, and the cache is used
        # only while it is up and past the failover fence (service/cache_fence.py).
        self.fenced = backend.target.mode != PLAIN
        self.client = None if backend.target.mode == CLUSTER else connect(
            backend.target, **subscriber_options(timeout))
        self.timeout = timeout
        self.ready = False
        self.subscription = None  # the current one (its peer is the master it listens to)
        self._awaited: dict[str, asyncio.Future] = {}  # invalidation token -> its writer, waiting
        self._closing = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        # The subscription applies each message as its bytes arrive (invalidation_subscriber.py); this
        # loop only (re)connects, and checks `_closing` at least once a second.
        while not self._closing:
            subscription = None
            try:
                if self.backend.target.mode == CLUSTER:  # the slot's master may have moved: look again
                    await self._close_client()
                    self.client = await slot_master(self.backend.target, self.backend.epoch_key,
                                                    **subscriber_options(self.timeout))
                subscription = await Subscription.open(await master_address(self.client), self.backend.channel,
                                                       self._on_message, self.timeout)
                self.subscription = subscription
                if self.fenced:
                    await pass_fence(self.client, self.backend.prefix, self.backend.epoch_key, self.backend.channel)
                self.memory.clear()
                self.ready = True
                await subscription.wait_lost(lambda: self._closing)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._closing:
                    log.warning("near cache off until Redis is back: %s", type(exc).__name__)
            finally:
                self.ready = False
                self.memory.clear()
                if subscription is not None:
                    subscription.close()
            if not self._closing:
                await asyncio.sleep(self.RESUBSCRIBE_AFTER)

    def _on_message(self, data: bytes) -> None:
        if data == FLUSH_ALL:
            self.memory.clear()
            return
        if b"\n" in data:  # one chunk of an invalidation: its token, then the keys dropped
            self.memory.invalidate_now(self.backend.dropped_keys(data))
            return
        # The token alone ends an invalidation (RedisBackend.invalidate): a big one publishes one message
        # per chunk, all with its token, so only this last one tells its writer that all were heard.
        waiter = self._awaited.get(data.decode())
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def expect(self, token: str) -> None:
        self._awaited[token] = asyncio.get_running_loop().create_future()

    def forget(self, token: str) -> None:
        self._awaited.pop(token, None)

    async def delivered(self, token: str, timeout: float) -> None:
        """Until this instance's subscriber has received the end of the invalidation `token` (at most
        `timeout`).

        Redis delivers a PUBLISH to its subscribers measurably later than the publishing call's reply
        (~0.5 ms on loopback): answering the write at once let a client read the old copy from another
        instance's near cache. Every subscriber gets the message in the same pass, so once ours has it,
        the others' sockets have it too, and their subscribers apply it before any later request."""
        waiter = self._awaited.get(token)
        if not self.ready or waiter is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            log.warning("cache invalidation not heard back on the channel within %.2f s", timeout)

    def get(self, key: str) -> bytes | None:
        return self.memory.get_now(key) if self.ready else None

    def keep(self, key: str, value: bytes, seconds_left: float | None, epoch: int) -> None:
        ttl = self.ttl if seconds_left is None else min(self.ttl, seconds_left)
        if self.ready and ttl > 0:
            self.memory.fill_now(key, value, ttl, (), epoch)

    def drop(self, keys: tuple[str, ...]) -> None:
        self.memory.invalidate_now(keys)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
                await asyncio.wait_for(self._task, 2 * self.RESUBSCRIBE_AFTER + 1)
        await self._close_client()

    async def _close_client(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                if self.client is not None:
                    await self.client.aclose()
