"""Cache: read-through with single-flight, the epoch guard, failure pauses and pending invalidations."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Awaitable, Callable

from .. import tracing
from ..cache_fence import invalidate_through_failover
from .stats import CacheStats

if TYPE_CHECKING:
    from .near import NearCache

log = logging.getLogger("service.cache")

NOT_FOUND = b""  # cached marker for "the database has no such row"
_FAILED = object()  # a backend call that did not succeed

Loader = Callable[[], Awaitable[tuple[bytes | None, float | None, tuple[str, ...]]]]
"""Returns (encoded value or None when not found, TTL cap in seconds or None, tags of the entry)."""


class Cache:
    PAUSE_AFTER_ERROR = 1.0  # seconds the backend is bypassed after a failure
    # Names (keys + tags) remembered while Redis fails, sent when it is back. Bounded by names, not calls:
    # one batch write can name 10,000 e-mails. Past it, the whole namespace is flushed once Redis is back.
    MAX_PENDING_NAMES = 100_000

    def __init__(self, backend, timeout: float, near: NearCache | None = None):
        self.backend = backend
        self.near = near
        self.timeout = timeout
        self.stats = CacheStats()
        self._inflight: dict[str, asyncio.Future] = {}
        self._paused_until = 0.0
        self._pending: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self._pending_names = 0
        self._flush_all_pending = False  # more was missed than could be remembered: flush everything
        # One flush at a time, and every other backend call waits for it: a call that found the list
        # already taken by a flush in progress would read entries it has not dropped yet.
        self._flush_lock = asyncio.Lock()
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
                self.stats.hit(key)
                return None if cached == NOT_FOUND else cached
            near_epoch = near.memory.epoch  # before the GET: a copy must not outlive a racing invalidation
        task = self._inflight.get(key)
        backend_up = True
        if task is None:
            # Fast path, no task: most reads are hits. A miss goes on to the shared task below, which
            # looks again (one more GET, on misses only) so that a fill finished meanwhile is used.
            cached, epoch, seconds_left = await self._call(self.backend.get_entry(key), (None, None, None))
            if cached is not None:
                self.stats.hit(key)
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
            self.stats.hit(key)
        else:
            self.stats.miss(key)
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
            # "Not found" is under no tag: it lives seconds, its writers drop it by key, and a flood of
            # random ids must not grow tag sets.
            tags = tags if value is not None else ()
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
        # No overall timeout: a big invalidation is many short Redis calls, each under the client's own
        # socket timeout (REDIS_TIMEOUT), so a slow Redis still fails fast.
        near = self.near
        token = near.new_token() if near is not None else None
        if near is not None:
            near.expect(token)  # before sending: acknowledgements may come back before the reply
        try:
            # The token only matters with a near cache (Redis): then the messages carry it.
            sent = self.backend.invalidate(keys, tags, token) if near is not None else \
                self.backend.invalidate(keys, tags)
            try:
                dropped = await self._call(sent, _FAILED, bounded=False)
                if dropped is _FAILED and near is not None and near.fenced:
                    dropped = await invalidate_through_failover(self, keys, tags, token, self.failover_wait,
                                                                _FAILED)
                if dropped is not _FAILED and near is not None:
                    # Answered only once no instance can serve a near copy of what was dropped: every
                    # member acknowledged, or a lease went by (near_acks.py). Even when Redis had none
                    # of the keys: a near copy may outlive its Redis entry (evicted under maxmemory).
                    members = await self._call(near.announce(token), _FAILED)
                    try:
                        await near.acknowledged(token, None if members is _FAILED else members)
                    except Exception:  # the write is committed: a fault here must not answer 500
                        log.exception("cache invalidation: waiting for acknowledgements failed")
                        await asyncio.sleep(near.lease.seconds)  # what a missing acknowledgement costs
            except asyncio.CancelledError:
                # The write is committed; a cancelled request (shutdown, a sibling's failure) must not
                # take its invalidation with it: sent again before the next cache call (repeating it is
                # harmless).
                self._remember(keys, tags)
                raise
            if dropped is _FAILED:
                self._remember(keys, tags)
        finally:
            if near is not None:
                near.forget(token)

    def _remember(self, keys, tags) -> None:
        if self._flush_all_pending:
            return  # everything will be flushed anyway
        if (keys, tags) in self._pending[-8:]:  # the same invalidation again (a retried write): once is enough
            return
        names = len(keys) + len(tags)
        if self._pending_names + names <= self.MAX_PENDING_NAMES:
            self._pending.append((keys, tags))
            self._pending_names += names
            return
        self._pending, self._pending_names, self._flush_all_pending = [], 0, True
        log.error("cache: more invalidations missed while Redis failed than are remembered (%d names); "
                  "every cached entry will be flushed when Redis is back", self.MAX_PENDING_NAMES)

    async def _flush_pending(self) -> None:
        async with self._flush_lock:
            if self._pending or self._flush_all_pending:
                await self._send_pending()

    async def _send_pending(self) -> None:
        if self._flush_all_pending:
            await self.backend.flush_entries()  # under the socket timeout per call; repeated if it fails
            self._flush_all_pending = False
            if self.near is not None:
                self.near.memory.clear()  # ours at once; the others hear the flush on the channel
            log.warning("cache: every entry flushed (invalidations missed while Redis failed)")
        pending, self._pending, self._pending_names = self._pending, [], 0
        for i, (keys, tags) in enumerate(pending):
            try:
                await self.backend.invalidate(keys, tags)  # each Redis call under the socket timeout
            except BaseException:
                # Keep this one and all not yet sent, before any remembered meanwhile, in order.
                self._pending = pending[i:] + self._pending
                self._pending_names = sum(len(k) + len(t) for k, t in self._pending)
                raise

    # ---- failure handling ---------------------------------------------------------------------------

    async def _call(self, awaitable, fallback, ok=None, bounded=True):
        """Run one backend call with the timeout (when `bounded`); on any failure count it, pause,
        return fallback. Pending invalidations are sent first, at most once per pause."""
        if time.monotonic() < self._paused_until:
            awaitable.close()
            self.stats.errors += 1
            return fallback
        try:
            if self._pending or self._flush_all_pending or self._flush_lock.locked():
                await self._flush_pending()
            async with asyncio.timeout(self.timeout if bounded else None):  # not wait_for: no task per call
                if tracing.TRACER is None or tracing.RECORDING.get() is None:  # off, or not sampled
                    result = await awaitable
                else:  # one span per backend call: "cache get_entry", "cache fill", ...
                    with tracing.client_span(f"cache {awaitable.__name__}", self.backend.name):
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
        if self.near is not None:
            # Disabled, it keeps no copies, but its writes still invalidate the other instances' and
            # wait for their acknowledgements, which its subscriber hears.
            self.near.start(member=self.enabled)

    async def ping(self) -> bool:
        try:
            return await asyncio.wait_for(self.backend.ping(), self.timeout)
        except Exception:
            return False

    async def close(self) -> None:
        if (self._pending or self._flush_all_pending) and time.monotonic() >= self._paused_until:
            # Invalidations remembered while Redis failed: one last try, so a restart does not drop them.
            try:
                async with asyncio.timeout(max(1.0, self.timeout * 4)):
                    await self._flush_pending()
            except Exception as exc:
                log.error("cache invalidations not sent at shutdown (%s); entries may be stale until their TTL",
                          type(exc).__name__)
        if self.near is not None:
            await self.near.close()
        await self.backend.close()
