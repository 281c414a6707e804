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
  "not found" is cached briefly (`NOT_FOUND`) and under no tag, so a flood of random ids costs
  entries that expire within CACHE_TTL_NOT_FOUND and nothing else.
* Bounded memory: a tag set expires with the longest-lived entry filled under it, never later.
* Invalidation of any size is chunked (redis_backend.py): no Redis call handles more than CHUNK keys,
  so signing out a user with 100,000 sessions never blocks Redis for other instances.
* Redis Sentinel and Cluster (redis_connect.py): after a failover nothing the old master held is
  trusted (cache_fence.py); a write waits for its invalidation to land on the new master.
* Near cache (with Redis): hot entries are also kept in process, and dropped by every invalidation,
  from any instance, published on Redis pub/sub with each chunk (see near.py). A write is answered
  only once no other instance can serve a copy it invalidated (acknowledgements and leases,
  near_acks.py).
* Redis down or slow: every call has a short timeout; on failure the cache is bypassed for a second,
  errors are counted, reads go to PostgreSQL, and invalidations that could not be sent are retried when
  Redis answers again — once per pause, not on every call, and resuming where they stopped.

Modules: read_through.py (Cache: single-flight reads, failure handling, pending invalidations),
memory.py and redis_backend.py (the two backends), near.py (near cache), near_acks.py (its
acknowledgements and leases), stats.py.
"""

from __future__ import annotations

from ..redis_connect import CLUSTER, PLAIN, hash_tagged, parse_redis_url
from .memory import MemoryBackend
from .near import NearCache
from .read_through import NOT_FOUND, Cache, Loader
from .redis_backend import RedisBackend
from .stats import CacheStats

__all__ = ["NOT_FOUND", "Cache", "CacheStats", "Loader", "MemoryBackend", "NearCache", "RedisBackend",
           "create_cache"]


def create_cache(settings, prefix: str = "aw:") -> Cache:
    """Call cache.start() from inside the event loop (the near cache's subscriber is a task)."""
    near = None
    if settings.redis_url:
        cluster = parse_redis_url(settings.redis_url, settings.redis_cluster).mode == CLUSTER
        backend = RedisBackend(settings.redis_url, hash_tagged(prefix) if cluster else prefix,
                               settings.redis_timeout, cluster)
        if settings.cache_near_ttl > 0 or backend.target.mode != PLAIN:  # HA modes need its fence
            near = NearCache(backend, settings.redis_url, settings.cache_max_entries, settings.cache_near_ttl,
                             settings.redis_timeout, settings.cache_near_lease)
    else:
        backend = MemoryBackend(settings.cache_max_entries)
    cache = Cache(backend, settings.redis_timeout, near)
    cache.not_found_ttl = settings.cache_ttl_not_found
    cache.failover_wait = settings.redis_failover_wait
    return cache
