"""Near cache: copies of hot Redis entries kept in process, dropped by invalidations from any instance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

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
        import redis.asyncio as redis

        self.backend = backend
        self.memory = MemoryBackend(max_entries)
        self.ttl = ttl
        # Its own connection, without the short socket timeout: a subscriber waits idle between messages.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=timeout, health_check_interval=5)
        self.timeout = timeout
        self.ready = False
        self._closing = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        # get_message with a timeout, not listen(): redis-py's blocking read can swallow a cancellation,
        # so the loop also checks `_closing` at least once a second.
        while not self._closing:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.backend.channel)
                self.memory.clear()
                self.ready = True
                while not self._closing:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self.memory.invalidate_now(self.backend.dropped_keys(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._closing:
                    log.warning("near cache off until Redis is back: %s", type(exc).__name__)
            finally:
                self.ready = False
                self.memory.clear()
                # Bounded: a Redis that is paused (not gone) would never answer the UNSUBSCRIBE.
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    async with asyncio.timeout(self.timeout):
                        await pubsub.aclose()
            if not self._closing:
                await asyncio.sleep(self.RESUBSCRIBE_AFTER)

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
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                await self.client.aclose()
