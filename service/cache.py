"""Read-through cache of hot reads: Redis (redis.asyncio) when REDIS_URL is set, else in process.

What it guarantees:
* Entries are the encoded answers (JSON bytes), so a hit costs one GET and no re-encoding.
* Every entry has a TTL; callers cap it by the entity's own expiry (a session's `expires`).
* Invalidation after commit, by key and by tag (`user:{id}` covers the user's subscription, natal
  data and session lookups). Each tag is a set of the keys filled under it.
* No stale refill: a reader remembers the cache's invalidation epoch before it queries the database and
  fills only if no invalidation happened meanwhile (checked atomically in Redis by a script). A read
  that raced a write therefore never puts the old value back.
* No stampede: concurrent misses of one key in one process share one database query (single-flight);
  "not found" is cached briefly (`NOT_FOUND`).
* Near cache (with Redis): hot entries are also kept in process, and dropped by every invalidation,
  from any instance, published by the invalidation script on Redis pub/sub (see NearCache).
* Redis down or slow: every call has a short timeout; on failure the cache is bypassed for a second,
  errors are counted, reads go to PostgreSQL, and invalidations that could not be sent are retried when
  Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
from collections import OrderedDict
from typing import Awaitable, Callable

from .cache_fence import FLUSH_ALL, invalidate_through_failover, pass_fence
from .invalidation_subscriber import Subscription, master_address
from .redis_connect import (CLUSTER, PLAIN, connect, hash_tagged, parse_redis_url, slot_master,
                            subscriber_options)

log = logging.getLogger("service.cache")

NOT_FOUND = b""  # cached marker for "the database has no such row"
_FAILED = object()  # a backend call that did not succeed

Loader = Callable[[], Awaitable[tuple[bytes | None, float | None, tuple[str, ...]]]]
"""Returns (encoded value or None when not found, TTL cap in seconds or None, tags of the entry)."""


class CacheStats:
    def __init__(self):
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def as_dict(self, backend: str) -> dict:
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses,
                "hitRate": round(self.hits / total, 4) if total else 0.0,
                "errors": self.errors, "backend": backend}


class MemoryBackend:
    """An LRU dict with per-entry expiry; same semantics as the Redis backend, for one process."""

    name = "memory"

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self.entries: OrderedDict[str, tuple[float, bytes, tuple[str, ...]]] = OrderedDict()
        self.tags: dict[str, set[str]] = {}
        self.epoch = 0

    def _drop(self, key: str) -> None:
        """Remove an entry and its key from its tag sets (which go when empty): tag sets never leak."""
        item = self.entries.pop(key, None)
        if item is None:
            return
        for tag in item[2]:
            members = self.tags.get(tag)
            if members is not None:
                members.discard(key)
                if not members:
                    del self.tags[tag]

    def get_now(self, key: str) -> bytes | None:
        item = self.entries.get(key)
        if item is not None:
            if item[0] > time.monotonic():
                self.entries.move_to_end(key)
                return item[1]
            self._drop(key)
        return None

    async def get(self, key: str) -> tuple[bytes | None, int]:
        return self.get_now(key), self.epoch

    async def get_entry(self, key: str) -> tuple[bytes | None, int, float | None]:
        """(value, epoch, seconds left or None when unknown)."""
        value, epoch = await self.get(key)
        return value, epoch, None

    async def fill(self, key: str, value: bytes, ttl: float, tags: tuple[str, ...], epoch: int) -> bool:
        return self.fill_now(key, value, ttl, tags, epoch)

    def fill_now(self, key: str, value: bytes, ttl: float, tags: tuple[str, ...], epoch: int) -> bool:
        if epoch != self.epoch:
            return False
        self._drop(key)
        self.entries[key] = (time.monotonic() + ttl, value, tags)
        for tag in tags:
            self.tags.setdefault(tag, set()).add(key)
        while len(self.entries) > self.max_entries:
            self._drop(next(iter(self.entries)))
        return True

    async def invalidate(self, keys: tuple[str, ...], tags: tuple[str, ...], token: str | None = None) -> int:
        self.invalidate_now(keys, tags)
        return 0

    def invalidate_now(self, keys, tags=()) -> None:
        self.epoch += 1
        for key in keys:
            self._drop(key)
        for tag in tags:
            for key in list(self.tags.get(tag, ())):
                self._drop(key)
            self.tags.pop(tag, None)

    def clear(self) -> None:
        self.epoch += 1
        self.entries.clear()
        self.tags.clear()

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass


# KEYS[1] = epoch key, KEYS[2] = entry key, KEYS[3..] = tag sets; ARGV = epoch seen, value, ttl ms.
# The epoch is a random token written by each invalidation (not a counter: a Redis restarted empty would
# count again from 0 and could hand out an epoch a reader saw before the restart).
_FILL = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
local keep = math.max(86400000, tonumber(ARGV[3]))
for i = 3, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[2])
  if redis.call('PTTL', KEYS[i]) < keep then redis.call('PEXPIRE', KEYS[i], keep) end
end
return 1
"""
# KEYS[1] = epoch key, then the plain keys, then tag sets; ARGV = number of plain keys, new epoch token,
# channel. Every entry key dropped is published on the channel, for the instances' near caches, after
# the epoch token (the writer waits for its own message: see Cache.invalidate). Returns how many.
_INVALIDATE = """
redis.call('SET', KEYS[1], ARGV[2])
local n = tonumber(ARGV[1])
local dropped = {}
for i = 2, n + 1 do
  redis.call('DEL', KEYS[i])
  table.insert(dropped, KEYS[i])
end
for i = n + 2, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  for _, member in ipairs(members) do
    redis.call('DEL', member)
    table.insert(dropped, member)
  end
  redis.call('DEL', KEYS[i])
end
if #dropped > 0 then redis.call('PUBLISH', ARGV[3], ARGV[2] .. '\\n' .. table.concat(dropped, '\\n')) end
return #dropped
"""
_EXPIRY = struct.Struct(">d")  # each Redis value starts with its expiry (unix time), for near copies


class RedisBackend:
    """Keys are `<prefix>k:<key>`, tag sets `<prefix>t:<tag>`, the epoch `<prefix>epoch`.

    The scripts touch several keys, so with Redis Cluster the prefix should be a hash tag ("{aw}:").
    """

    name = "redis"

    def __init__(self, url: str, prefix: str, timeout: float, cluster: bool = False):
        self.target = parse_redis_url(url, cluster)  # plain, Sentinel or Cluster: see redis_connect
        self.client = connect(
            self.target, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False,
            health_check_interval=0,
        )
        self.prefix = prefix
        self.epoch_key = f"{prefix}epoch"
        self._fill = self.client.register_script(_FILL)
        self._invalidate = self.client.register_script(_INVALIDATE)

    async def get_entry(self, key: str) -> tuple[bytes | None, bytes, float | None]:
        """(value, epoch, seconds the entry has left)."""
        raw, epoch = await self.client.mget(self.prefix + "k:" + key, self.epoch_key)
        if raw is None:
            return None, epoch or b"", None
        return raw[_EXPIRY.size:], epoch or b"", _EXPIRY.unpack_from(raw)[0] - time.time()

    async def get(self, key: str) -> tuple[bytes | None, bytes]:
        value, epoch, _ = await self.get_entry(key)
        return value, epoch

    async def fill(self, key: str, value: bytes, ttl: float, tags: tuple[str, ...], epoch: int) -> bool:
        keys = [self.epoch_key, self.prefix + "k:" + key, *(self.prefix + "t:" + t for t in tags)]
        stored = _EXPIRY.pack(time.time() + ttl) + value
        return bool(await self._fill(keys=keys, args=[epoch, stored, max(1, int(ttl * 1000))]))

    async def invalidate(self, keys: tuple[str, ...], tags: tuple[str, ...], token: str | None = None) -> int:
        names = [self.epoch_key, *(self.prefix + "k:" + k for k in keys), *(self.prefix + "t:" + t for t in tags)]
        return await self._invalidate(keys=names, args=[len(keys), token or os.urandom(12).hex(), self.channel])

    @property
    def channel(self) -> str:
        return self.prefix + "invalidated"

    def dropped_keys(self, message: bytes) -> list[str]:
        """The cache keys named in an invalidation message (Redis names, prefix removed); the first
        line is the invalidation's token."""
        start = len(self.prefix) + 2  # "<prefix>k:"
        return [name[start:] for name in message.decode().split("\n")[1:] if name]

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()


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
        self.memory.invalidate_now(self.backend.dropped_keys(data))
        waiter = self._awaited.get(data[:data.find(b"\n")].decode())
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def expect(self, token: str) -> None:
        self._awaited[token] = asyncio.get_running_loop().create_future()

    def forget(self, token: str) -> None:
        self._awaited.pop(token, None)

    async def delivered(self, token: str, timeout: float) -> None:
        """Until this instance's subscriber has received the invalidation `token` (at most `timeout`).

        Redis delivers a PUBLISH to its subscribers measurably later than the publishing script's reply
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


class Cache:
    PAUSE_AFTER_ERROR = 1.0  # seconds the backend is bypassed after a failure
    MAX_PENDING_INVALIDATIONS = 10000

    def __init__(self, backend, timeout: float, near: NearCache | None = None):
        self.backend = backend
        self.near = near
        self.timeout = timeout
        self.stats = CacheStats()
        self._inflight: dict[str, asyncio.Future] = {}
        self._paused_until = 0.0
        self._pending: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self.enabled = True

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # ---- reads --------------------------------------------------------------------------------------

    async def read_through(self, key: str, ttl: float, loader: Loader) -> bytes | None:
        """The cached answer for `key`, or the loader's (then cached); None when not found.

        Single-flight: concurrent calls for one key in this process share one task doing the backend
        GET, the query and the fill, so neither a cold key nor a just-filled one is queried twice. The
        task is shared, not owned by its first caller: a caller that goes away cancels nobody else.
        """
        if not self.enabled:
            value, _, _ = await loader()
            return value
        near = self.near
        if near is not None and near.fenced and not near.ready:
            value, _, _ = await loader()  # Sentinel/Cluster: Redis not trusted until past the fence
            return value
        if near is not None:
            cached = near.get(key)
            if cached is not None:
                self.stats.hits += 1
                return None if cached == NOT_FOUND else cached
            near_epoch = near.memory.epoch  # before the GET: a copy must not outlive a racing invalidation
        task = self._inflight.get(key)
        backend_up = True
        if task is None:
            # Fast path, no task: most reads are hits. A miss goes on to the shared task below, which
            # looks again (one more GET, on misses only) so that a fill finished meanwhile is used.
            cached, epoch, seconds_left = await self._call(self.backend.get_entry(key), (None, None, None))
            if cached is not None:
                self.stats.hits += 1
                if near is not None:
                    near.keep(key, cached, seconds_left, near_epoch)
                return None if cached == NOT_FOUND else cached
            backend_up = epoch is not None
            task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._lookup(key, ttl, loader, backend_up))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        value, hit = await asyncio.shield(task)
        if hit:
            self.stats.hits += 1
        else:
            self.stats.misses += 1
        return value

    def _finished(self, key: str, task: asyncio.Task) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: the callers re-raise it; none left must not be logged

    async def _lookup(self, key: str, ttl: float, loader: Loader, backend_up: bool = True
                      ) -> tuple[bytes | None, bool]:
        # backend_up False: the GET just failed; neither ask again nor fill (no epoch to guard it).
        near_epoch = self.near.memory.epoch if self.near is not None else None
        cached, epoch = await self._call(self.backend.get(key), (None, None)) if backend_up else (None, None)
        if cached is not None:
            return (None if cached == NOT_FOUND else cached), True
        value, cap, tags = await loader()
        if epoch is not None:
            entry_ttl = ttl if value is not None else min(ttl, self.not_found_ttl)
            if cap is not None:
                entry_ttl = min(entry_ttl, cap)
            stored = value if value is not None else NOT_FOUND
            if entry_ttl > 0 and await self._call(self.backend.fill(key, stored, entry_ttl, tags, epoch), False):
                if self.near is not None:
                    self.near.keep(key, stored, entry_ttl, near_epoch)
        return value, False

    not_found_ttl: float = 5.0
    failover_wait: float = 10.0  # Sentinel/Cluster: seconds a write waits for its invalidation to land

    # ---- writes -------------------------------------------------------------------------------------

    async def invalidate(self, keys: tuple[str, ...] = (), tags: tuple[str, ...] = ()) -> None:
        """Called after the write's transaction has committed."""
        if not keys and not tags:
            return
        # Loads in flight may have read the old rows: later readers must not join them (they start
        # their own); those loads' fills are refused by the epoch check.
        self._inflight.clear()
        if self.near is not None:
            self.near.drop(keys)  # this instance at once; tags and other instances through the channel
            if tags:
                self.near.memory.clear()  # which keys a tag covers is known in Redis only
        token = os.urandom(12).hex()
        if self.near is not None:
            self.near.expect(token)  # before sending: the message may come back before the reply
        try:
            # The token only matters with a near cache (Redis): then the message carries it.
            sent = self.backend.invalidate(keys, tags, token) if self.near is not None else \
                self.backend.invalidate(keys, tags)
            dropped = await self._call(sent, _FAILED)
            if dropped is _FAILED and self.near is not None and self.near.fenced:
                dropped = await invalidate_through_failover(self, keys, tags, token, self.failover_wait, _FAILED)
            if dropped is _FAILED:
                self._remember(keys, tags)
            elif dropped and self.near is not None:  # keys dropped: near copies may exist elsewhere
                await self.near.delivered(token, self.timeout * 2)
        finally:
            if self.near is not None:
                self.near.forget(token)

    def _remember(self, keys, tags) -> None:
        if len(self._pending) < self.MAX_PENDING_INVALIDATIONS:
            self._pending.append((keys, tags))
        else:
            log.error("cache invalidations lost while Redis was down; entries may be stale until their TTL")

    async def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for i, (keys, tags) in enumerate(pending):
            try:
                await asyncio.wait_for(self.backend.invalidate(keys, tags), self.timeout)
            except BaseException:
                # Keep this one and all not yet sent, before any remembered meanwhile, in order.
                self._pending = pending[i:] + self._pending
                raise

    # ---- failure handling ---------------------------------------------------------------------------

    async def _call(self, awaitable, fallback, ok=None):
        """Run one backend call with the timeout; on any failure count it, pause, return fallback."""
        if time.monotonic() < self._paused_until:
            awaitable.close()
            self.stats.errors += 1
            return fallback
        try:
            if self._pending:
                await self._flush_pending()
            async with asyncio.timeout(self.timeout):  # not wait_for: no task per call
                result = await awaitable
            return ok if ok is not None else result
        except asyncio.CancelledError:
            awaitable.close()  # not started when the flush was cancelled: no "never awaited" warning
            raise
        except Exception as exc:
            awaitable.close()
            self.stats.errors += 1
            self._paused_until = time.monotonic() + self.PAUSE_AFTER_ERROR
            log.warning("cache backend failed, reading from the database: %s", type(exc).__name__)
            return fallback

    def start(self) -> None:
        if self.near is not None and self.enabled:
            self.near.start()

    async def ping(self) -> bool:
        try:
            return await asyncio.wait_for(self.backend.ping(), self.timeout)
        except Exception:
            return False

    async def close(self) -> None:
        if self.near is not None:
            await self.near.close()
        await self.backend.close()


def create_cache(settings, prefix: str = "aw:") -> Cache:
    """Call cache.start() from inside the event loop (the near cache's subscriber is a task)."""
    near = None
    if settings.redis_url:
        cluster = parse_redis_url(settings.redis_url, settings.redis_cluster).mode == CLUSTER
        backend = RedisBackend(settings.redis_url, hash_tagged(prefix) if cluster else prefix,
                               settings.redis_timeout, cluster)
        if settings.cache_near_ttl > 0 or backend.target.mode != PLAIN:  # HA modes need its fence
            near = NearCache(backend, settings.redis_url, settings.cache_max_entries, settings.cache_near_ttl,
                             settings.redis_timeout)
    else:
        backend = MemoryBackend(settings.cache_max_entries)
    cache = Cache(backend, settings.redis_timeout, near)
    cache.not_found_ttl = settings.cache_ttl_not_found
    cache.failover_wait = settings.redis_failover_wait
    return cache
