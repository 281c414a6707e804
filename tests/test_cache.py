"""service.cache.Cache on both backends (in-process LRU and a real Redis): read-through, TTLs, the
"not found" marker, tags, the stale-refill guard, single-flight, and failure handling."""

import asyncio
import time
import types
import uuid

import pytest

from service.cache import NOT_FOUND, Cache, MemoryBackend, RedisBackend, create_cache
from service.cache import memory as memory_module
from service.cache import read_through as cache_module
from tests.conftest import make_settings

TIMEOUT = 1.0  # generous backend timeout: these tests are about semantics, not about a slow Redis


@pytest.fixture(params=["memory", "redis"])
async def cache(request, redis_url):
    if request.param == "memory":
        yield Cache(MemoryBackend(1000), TIMEOUT)
        return
    prefix = f"aw-test-cache-{uuid.uuid4().hex[:8]}:"
    backend = RedisBackend(redis_url, prefix, TIMEOUT)
    yield Cache(backend, TIMEOUT)
    keys = [k async for k in backend.client.scan_iter(match=prefix + "*")]
    if keys:
        await backend.client.delete(*keys)
    await backend.close()


class Loader:
    """Counts calls; answers `value` (None: not found) with the given cap and tags."""

    def __init__(self, value=b'{"v":1}', cap=None, tags=()):
        self.value, self.cap, self.tags = value, cap, tags
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        return self.value, self.cap, self.tags


class BlockingLoader(Loader):
    """Like Loader, but every call waits for `release` (set by the test) before answering."""

    def __init__(self, value=b'{"v":"old"}', tags=()):
        super().__init__(value, None, tags)
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self):
        self.calls += 1
        value = self.value  # what the database had when the query ran
        self.started.set()
        await self.release.wait()
        return value, self.cap, self.tags


def stats(cache):
    return cache.stats.hits, cache.stats.misses, cache.stats.errors


async def ttl_ms(cache, key):
    """The entry's remaining lifetime in ms as the backend stores it, None when absent."""
    if isinstance(cache.backend, RedisBackend):
        pttl = await cache.backend.client.pttl(cache.backend.prefix + "k:" + key)
        return pttl if pttl >= 0 else None
    item = cache.backend.entries.get(key)
    return (item[0] - time.monotonic()) * 1000 if item else None


def jump_clock(monkeypatch, seconds):
    """service.cache's clock (only its own, not the event loop's) jumps `seconds` ahead."""
    real = time.monotonic
    clock = types.SimpleNamespace(monotonic=lambda: real() + seconds)
    for module in (cache_module, memory_module):
        monkeypatch.setattr(module, "time", clock)


async def let_expire(cache, monkeypatch, seconds):
    """Move past `seconds`: the memory backend's clock jumps; Redis expiry needs real time."""
    if isinstance(cache.backend, MemoryBackend):
        jump_clock(monkeypatch, seconds + 0.01)
    else:
        await asyncio.sleep(seconds + 0.05)


# ---- read-through -----------------------------------------------------------------------------------

async def test_hit_after_miss_and_stats_count_exactly(cache):
    loader = Loader(b'{"name":"Ada"}')
    assert await cache.read_through("user:id:1", 300, loader) == b'{"name":"Ada"}'
    assert loader.calls == 1 and stats(cache) == (0, 1, 0)
    for _ in range(3):
        assert await cache.read_through("user:id:1", 300, loader) == b'{"name":"Ada"}'
    assert loader.calls == 1 and stats(cache) == (3, 1, 0)
    other = Loader(b'{"name":"Bob"}')
    assert await cache.read_through("user:id:2", 300, other) == b'{"name":"Bob"}'
    assert other.calls == 1 and stats(cache) == (3, 2, 0)
    assert cache.stats.as_dict(cache.backend_name) == {
        "hits": 3, "misses": 2, "hitRate": 0.6, "errors": 0, "backend": cache.backend_name}


async def test_stats_of_a_fresh_cache():
    assert Cache(MemoryBackend(10), 1).stats.as_dict("memory") == {
        "hits": 0, "misses": 0, "hitRate": 0.0, "errors": 0, "backend": "memory"}


async def test_entry_expires_after_its_ttl(cache, monkeypatch):
    loader = Loader()
    await cache.read_through("k", 0.3, loader)
    remaining = await ttl_ms(cache, "k")
    assert remaining is not None and 0 < remaining <= 300
    await let_expire(cache, monkeypatch, 0.3)
    await cache.read_through("k", 0.3, loader)
    assert loader.calls == 2 and stats(cache) == (0, 2, 0)


async def test_not_found_is_cached_briefly(cache, monkeypatch):
    cache.not_found_ttl = 0.3
    loader = Loader(None)
    for _ in range(50):
        assert await cache.read_through("user:id:missing", 300, loader) is None
    assert loader.calls == 1
    assert stats(cache) == (49, 1, 0)
    remaining = await ttl_ms(cache, "user:id:missing")
    assert remaining is not None and remaining <= 300  # the not-found TTL, not the entry's 300 s
    await let_expire(cache, monkeypatch, 0.3)
    loader.value = b'{"now":"there"}'
    assert await cache.read_through("user:id:missing", 300, loader) == b'{"now":"there"}'
    assert loader.calls == 2


async def test_not_found_marker_is_stored_as_such(cache):
    await cache.read_through("gone", 300, Loader(None))
    cached, _ = await cache.backend.get("gone")
    assert cached == NOT_FOUND


async def test_ttl_is_capped_by_the_entitys_own_expiry(cache, monkeypatch):
    loader = Loader(cap=0.3)  # e.g. a session expiring in 0.3 s, cached with a 300 s TTL
    await cache.read_through("session:x", 300, loader)
    remaining = await ttl_ms(cache, "session:x")
    assert remaining is not None and remaining <= 300
    await let_expire(cache, monkeypatch, 0.3)
    await cache.read_through("session:x", 300, loader)
    assert loader.calls == 2


async def test_already_expired_entity_is_not_cached(cache):
    loader = Loader(cap=-5.0)
    await cache.read_through("session:old", 300, loader)
    assert await ttl_ms(cache, "session:old") is None
    await cache.read_through("session:old", 300, loader)
    assert loader.calls == 2


async def test_disabled_cache_always_loads_and_counts_nothing(cache):
    cache.enabled = False
    loader = Loader()
    for _ in range(3):
        assert await cache.read_through("k", 300, loader) == loader.value
    assert loader.calls == 3 and stats(cache) == (0, 0, 0)


# ---- invalidation -----------------------------------------------------------------------------------

async def test_invalidate_by_key_and_by_tag(cache):
    user = Loader(b"user", tags=("user:1",))
    sub = Loader(b"sub", tags=("user:1",))
    other = Loader(b"other", tags=("user:2",))
    untagged = Loader(b"email")
    for key, loader in (("u1", user), ("s1", sub), ("u2", other), ("e1", untagged)):
        await cache.read_through(key, 300, loader)

    await cache.invalidate(keys=("e1",))
    for key, loader in (("u1", user), ("s1", sub), ("u2", other), ("e1", untagged)):
        await cache.read_through(key, 300, loader)
    assert (user.calls, sub.calls, other.calls, untagged.calls) == (1, 1, 1, 2)

    await cache.invalidate(tags=("user:1",))
    for key, loader in (("u1", user), ("s1", sub), ("u2", other), ("e1", untagged)):
        await cache.read_through(key, 300, loader)
    assert (user.calls, sub.calls, other.calls, untagged.calls) == (2, 2, 1, 2)

    # The tag still covers what was filled again after its invalidation.
    await cache.invalidate(tags=("user:1",))
    await cache.read_through("u1", 300, user)
    assert user.calls == 3


async def test_invalidate_nothing_is_a_no_op(cache):
    loader = Loader()
    await cache.read_through("k", 300, loader)
    await cache.invalidate()
    await cache.read_through("k", 300, loader)
    assert loader.calls == 1


async def test_a_read_that_raced_a_write_does_not_put_the_old_value_back(cache):
    """Point 3 of the issue: read starts, write commits and invalidates, read finishes."""
    loader = BlockingLoader(b'{"name":"old"}', tags=("user:1",))
    reader = asyncio.create_task(cache.read_through("user:id:1", 300, loader))
    await loader.started.wait()          # the read has queried the database (old row)...
    loader.value = b'{"name":"new"}'     # ...then the write commits...
    await cache.invalidate(keys=("user:id:1",), tags=("user:1",))  # ...and invalidates
    loader.release.set()
    assert await reader == b'{"name":"old"}'  # that read answers what it saw; it must not be cached
    assert await cache.read_through("user:id:1", 300, loader) == b'{"name":"new"}'
    assert loader.calls == 2
    assert await cache.read_through("user:id:1", 300, loader) == b'{"name":"new"}'
    assert loader.calls == 2


async def test_a_read_after_a_write_does_not_join_a_load_started_before_it(cache):
    loader = BlockingLoader(b'{"name":"old"}')
    first = asyncio.create_task(cache.read_through("user:id:1", 300, loader))
    await loader.started.wait()
    loader.value = b'{"name":"new"}'
    await cache.invalidate(keys=("user:id:1",))
    second = asyncio.create_task(cache.read_through("user:id:1", 300, loader))
    for _ in range(100):
        if loader.calls == 2:
            break
        await asyncio.sleep(0.01)
    assert loader.calls == 2  # the later reader ran its own query instead of waiting for the old one
    loader.release.set()
    assert await first == b'{"name":"old"}'
    assert await second == b'{"name":"new"}'


async def test_fill_with_an_old_epoch_is_refused(cache):
    _, epoch = await cache.backend.get("k")
    await cache.backend.invalidate(("other",), ())
    assert await cache.backend.fill("k", b"v", 300, (), epoch) is False
    assert (await cache.backend.get("k"))[0] is None
    _, epoch = await cache.backend.get("k")
    assert await cache.backend.fill("k", b"v", 300, (), epoch) is True
    assert (await cache.backend.get("k"))[0] == b"v"


# ---- single-flight ----------------------------------------------------------------------------------

async def test_concurrent_misses_of_one_key_query_once(cache):
    loader = BlockingLoader(b'{"v":1}')
    readers = [asyncio.create_task(cache.read_through("hot", 300, loader)) for _ in range(100)]
    await loader.started.wait()
    await asyncio.sleep(0.05)  # let every reader reach the cache (not a timing assertion)
    loader.release.set()
    assert await asyncio.gather(*readers) == [b'{"v":1}'] * 100
    assert loader.calls == 1
    assert stats(cache) == (0, 100, 0)
    assert await cache.read_through("hot", 300, loader) == b'{"v":1}'
    assert loader.calls == 1 and stats(cache) == (1, 100, 0)


async def test_concurrent_misses_without_waiting_query_once(cache):
    loader = Loader(b'{"v":2}')
    results = await asyncio.gather(*(cache.read_through("hot2", 300, loader) for _ in range(100)))
    assert results == [b'{"v":2}'] * 100
    assert loader.calls == 1
    assert cache.stats.hits + cache.stats.misses == 100


async def test_a_failing_load_fails_its_waiters_once_and_is_not_cached(cache):
    calls = 0

    async def failing():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("database down")

    results = await asyncio.gather(*(cache.read_through("k", 300, failing) for _ in range(20)),
                                   return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    loader = Loader()
    assert await cache.read_through("k", 300, loader) == loader.value
    assert loader.calls == 1


async def test_a_cancelled_caller_does_not_fail_the_others(cache):
    loader = BlockingLoader(b'{"v":3}')
    first = asyncio.create_task(cache.read_through("k", 300, loader))
    await loader.started.wait()
    second = asyncio.create_task(cache.read_through("k", 300, loader))
    await asyncio.sleep(0)
    first.cancel()
    loader.release.set()
    assert await second == b'{"v":3}'
    assert loader.calls == 1
    with pytest.raises(asyncio.CancelledError):
        await first


# ---- memory backend specifics -----------------------------------------------------------------------

async def test_memory_backend_evicts_least_recently_used_and_forgets_their_tags():
    cache = Cache(MemoryBackend(3), TIMEOUT)
    loaders = {k: Loader(k.encode(), tags=(f"t:{k}", "all")) for k in "abcd"}
    for k in "abc":
        await cache.read_through(k, 300, loaders[k])
    await cache.read_through("a", 300, loaders["a"])  # a is now the most recent
    await cache.read_through("d", 300, loaders["d"])  # evicts b
    assert list(cache.backend.entries) == ["c", "a", "d"]
    assert "t:b" not in cache.backend.tags and "b" not in cache.backend.tags["all"]
    await cache.invalidate(tags=("all",))
    assert not cache.backend.entries and not cache.backend.tags


async def test_memory_backend_drops_expired_entries_and_their_tags(monkeypatch):
    cache = Cache(MemoryBackend(10), TIMEOUT)
    await cache.read_through("k", 1, Loader(tags=("user:1",)))
    await let_expire(cache, monkeypatch, 1)
    await cache.read_through("k", 0, Loader(tags=("user:1",)))  # a TTL of 0 is not stored
    assert not cache.backend.entries and not cache.backend.tags


def test_create_cache_picks_the_backend_from_settings(migrated_database_url, redis_url):
    memory = create_cache(make_settings(migrated_database_url, None, cache_ttl_not_found=7))
    assert memory.backend_name == "memory" and memory.not_found_ttl == 7
    redis = create_cache(make_settings(migrated_database_url, redis_url), "p:")
    assert redis.backend_name == "redis" and redis.backend.prefix == "p:"


# ---- failure handling -------------------------------------------------------------------------------

class FlakyBackend(MemoryBackend):
    """A memory backend that raises while `down` and counts what reaches it."""

    name = "flaky"

    def __init__(self):
        super().__init__(100)
        self.down = False
        self.calls = 0
        self.invalidations = []

    async def get(self, key):
        self.calls += 1
        if self.down:
            raise ConnectionError("down")
        return await super().get(key)

    async def fill(self, *args):
        self.calls += 1
        if self.down:
            raise ConnectionError("down")
        return await super().fill(*args)

    async def invalidate(self, keys, tags):
        self.calls += 1
        if self.down:
            raise ConnectionError("down")
        self.invalidations.append((keys, tags))
        return await super().invalidate(keys, tags)


async def test_backend_failure_falls_through_counts_and_pauses(monkeypatch):
    backend = FlakyBackend()
    cache = Cache(backend, TIMEOUT)
    loader = Loader()
    await cache.read_through("k", 300, loader)
    backend.down = True
    calls = backend.calls
    assert await cache.read_through("k", 300, loader) == loader.value
    assert loader.calls == 2 and cache.stats.errors == 1
    assert backend.calls == calls + 1  # the failed GET; the fill was skipped (no epoch)
    for _ in range(5):  # paused: the backend is not even tried
        assert await cache.read_through("k", 300, loader) == loader.value
    assert backend.calls == calls + 1
    assert loader.calls == 7 and cache.stats.errors == 6
    backend.down = False
    jump_clock(monkeypatch, Cache.PAUSE_AFTER_ERROR + 0.01)
    assert await cache.read_through("k", 300, loader) == loader.value
    assert loader.calls == 7  # back to the cache, which still had the entry
    assert cache.stats.hits == 1


async def test_invalidations_made_while_down_are_sent_in_order_when_it_returns(monkeypatch):
    backend = FlakyBackend()
    cache = Cache(backend, TIMEOUT)
    loader = Loader(b"old", tags=("user:1",))
    await cache.read_through("u1", 300, loader)
    await cache.read_through("e1", 300, Loader(b"email"))
    backend.down = True
    await cache.invalidate(keys=("e1",))           # fails: pauses the cache
    await cache.invalidate(tags=("user:1",))       # paused: remembered without trying
    assert cache._pending == [(("e1",), ()), ((), ("user:1",))]
    backend.down = False
    jump_clock(monkeypatch, Cache.PAUSE_AFTER_ERROR + 0.01)
    loader.value = b"new"
    assert await cache.read_through("u1", 300, loader) == b"new"  # flushed before the GET
    assert backend.invalidations == [(("e1",), ()), ((), ("user:1",))]
    assert cache._pending == []


async def test_more_invalidations_than_can_be_remembered_flush_every_entry_when_it_returns(monkeypatch):
    """Memory for what Redis missed is bounded by names (keys + tags), not by calls: one batch write can
    name 10,000 e-mails. Past the bound nothing is dropped silently: the whole namespace is flushed once
    Redis is back (a cold cache, never a stale one), and the remembered list is freed at once."""
    monkeypatch.setattr(Cache, "MAX_PENDING_NAMES", 5)
    backend = FlakyBackend()
    cache = Cache(backend, TIMEOUT)
    loaders = {k: Loader(b"old-" + k.encode()) for k in ("a", "b", "c")}
    for key, loader in loaders.items():
        await cache.read_through(key, 300, loader)
    backend.down = True
    await cache.invalidate(keys=("a", "x1", "x2"))   # fails: remembered (3 names)
    await cache.invalidate(keys=("b", "x3", "x4"))   # 6 names: over the bound
    assert cache._pending == [] and cache._flush_all_pending
    backend.down = False
    jump_clock(monkeypatch, Cache.PAUSE_AFTER_ERROR + 0.01)
    for key, loader in loaders.items():
        loader.value = b"new-" + key.encode()
        assert await cache.read_through(key, 300, loader) == b"new-" + key.encode()  # nothing old survives
    assert not cache._flush_all_pending


async def test_a_read_during_the_flush_of_remembered_invalidations_waits_for_it(monkeypatch):
    """Redis is back; one read starts sending what was missed. A second read at that moment must not find
    the list already taken and read the entry the flush has not dropped yet."""
    backend = FlakyBackend()
    cache = Cache(backend, TIMEOUT)
    loader = Loader(b"old")
    await cache.read_through("u1", 300, loader)
    backend.down = True
    await cache.invalidate(keys=("u1",))
    backend.down = False
    jump_clock(monkeypatch, Cache.PAUSE_AFTER_ERROR + 0.01)
    release = asyncio.Event()
    real = backend.invalidate

    async def slow_invalidate(keys, tags):
        await release.wait()
        return await real(keys, tags)

    monkeypatch.setattr(backend, "invalidate", slow_invalidate)
    loader.value = b"new"
    first = asyncio.create_task(cache.read_through("other", 300, Loader(b"x")))  # starts the flush
    await asyncio.sleep(0.01)
    second = asyncio.create_task(cache.read_through("u1", 300, loader))
    await asyncio.sleep(0.01)
    release.set()
    await first
    assert await second == b"new"


async def test_a_flush_that_fails_halfway_keeps_what_was_not_sent(monkeypatch):
    backend = FlakyBackend()
    cache = Cache(backend, TIMEOUT)
    cache._pending = [(("a",), ()), (("b",), ()), (("c",), ())]
    sent = 0
    real = backend.invalidate

    async def invalidate_once(keys, tags):
        nonlocal sent
        if sent == 1:
            raise ConnectionError("down again")
        sent += 1
        return await real(keys, tags)

    monkeypatch.setattr(backend, "invalidate", invalidate_once)
    loader = Loader()
    assert await cache.read_through("k", 300, loader) == loader.value
    assert cache.stats.errors == 1
    assert backend.invalidations == [(("a",), ())]
    assert cache._pending == [(("b",), ()), (("c",), ())]


async def test_slow_backend_times_out_and_counts_an_error():
    class SlowBackend(MemoryBackend):
        async def get(self, key):
            await asyncio.sleep(10)

    cache = Cache(SlowBackend(10), 0.05)
    loader = Loader()
    started = time.monotonic()
    assert await cache.read_through("k", 300, loader) == loader.value
    assert time.monotonic() - started < 5
    assert cache.stats.errors == 1 and cache.stats.misses == 1


async def test_redis_unreachable_reads_from_the_loader(unused_tcp_port):
    cache = Cache(RedisBackend(f"redis://127.0.0.1:{unused_tcp_port}/0", "x:", 0.2), 0.2)
    try:
        loader = Loader()
        assert await cache.read_through("k", 300, loader) == loader.value
        await cache.invalidate(keys=("k",))
        assert cache.stats.errors == 2 and loader.calls == 1
        assert cache._pending == [(("k",), ())]
        assert await cache.ping() is False
    finally:
        await cache.close()
