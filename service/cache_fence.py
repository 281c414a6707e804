"""The cache's failover fence: after a Redis failover, nothing the old master held is trusted.

Redis replicates asynchronously. An invalidation that the old master applied (and that the write's
client was answered after) may not have reached the replica that Sentinel or the cluster promotes, so
the new master can hold an entry that is stale. The fence closes that hole:

* every instance reads from Redis only while its subscriber is connected to the master that holds the
  cache's slot and has passed the fence (NearCache.ready; otherwise reads go to PostgreSQL);
* the fence compares the master's replication ID (`master_replid`, which a promoted replica changes, as
  does a server restarted empty) with the one recorded in `<prefix>replid`; if they differ, the master
  is not the one the entries were checked against: a new epoch is written (fills in flight are
  refused), every key under the prefix is deleted (but the near caches' registry, see below), `*` is
  published (near caches are emptied), and the new ID is recorded. Only then does the instance use the
  cache again.

A failover therefore costs a cold cache, never a stale read. The registry of near caches
(service/cache/near_acks.py) is kept: it says whom a writer must wait for, and an instance that passed
the fence and registered a moment earlier must not vanish from it because another one flushed after.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

log = logging.getLogger("service.cache")

FLUSH_ALL = b"*"  # published on the invalidation channel: drop every near copy
_GLOB_SPECIALS = "\\*?[]"


def glob_escape(text: str) -> str:
    return "".join("\\" + c if c in _GLOB_SPECIALS else c for c in text)


async def pass_fence(client, prefix: str, epoch_key: str, channel: str, keep: tuple[str, ...] = ()) -> bool:
    """Run on the connection to the slot's master. True when the namespace had to be flushed (all but
    the epoch, the marker and the names in `keep`)."""
    replid = (await client.info("replication"))["master_replid"]
    marker = prefix + "replid"
    recorded = await client.get(marker)
    if recorded is not None and recorded.decode() == replid:
        return False
    await client.set(epoch_key, os.urandom(12).hex())
    batch = []
    async for name in client.scan_iter(match=glob_escape(prefix) + "*", count=1000):
        if name.decode() not in (epoch_key, marker, *keep):
            batch.append(name)
        if len(batch) >= 500:
            await client.unlink(*batch)
            batch = []
    if batch:
        await client.unlink(*batch)
    await client.publish(channel, FLUSH_ALL)
    await client.set(marker, replid)
    log.warning("cache: Redis master changed (replication id %s); cache namespace flushed", replid)
    return True


async def invalidate_through_failover(cache, keys: tuple[str, ...], tags: tuple[str, ...], token: str,
                                      wait: float, failed: object = None):
    """Sentinel/Cluster: an invalidation that failed is retried until it lands (on the new master
    after a failover), for up to `wait` seconds, before the write is answered.

    Answering first and sending it later is not enough here: meanwhile another instance, already past
    the fence on the new master, may read the old row and fill it (its epoch check passes, since the
    invalidation that would change the epoch has not arrived), and serve it after our answer. The
    write's answer is delayed by the failover instead. Returns the script's answer (the number of keys
    dropped) once applied, `cache`'s failure marker when not."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            # Bounded by what is left of `wait`, not per call: a big invalidation is many short calls
            # (each under the socket timeout), and may take longer than a few timeouts.
            async with asyncio.timeout(max(deadline - time.monotonic(), cache.timeout)):
                if cache._pending:
                    await cache._flush_pending()
                return await cache.backend.invalidate(keys, tags, token)
        except Exception:
            await asyncio.sleep(0.1)
    log.error("cache invalidation not applied within %.0f s of a Redis failure", wait)
    return failed
