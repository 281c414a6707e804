"""The Redis backend: entries, tag sets and the invalidation epoch in Redis; fills guarded by a script."""

from __future__ import annotations

import os
import struct
import time

from ..cache_fence import FLUSH_ALL, glob_escape
from ..redis_connect import CLUSTER, connect, parse_redis_url

# KEYS[1] = epoch key, KEYS[2] = entry key, KEYS[3..] = tag sets; ARGV = epoch seen, value, ttl ms.
# The epoch is a random token written by each invalidation (not a counter: a Redis restarted empty would
# count again from 0 and could hand out an epoch a reader saw before the restart).
# A tag set lives as long as the longest-lived entry filled under it and no longer: it never holds
# memory after its entries are gone.
_FILL = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
local ttl = tonumber(ARGV[3])
for i = 3, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[2])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"""
# Redis Cluster only: _drop as one script. redis-py's cluster pipeline cannot hold a MULTI with the
# keyless PUBLISH, and a script is as atomic (all keys share the prefix's hash tag, so one slot).
# KEYS = entry names, then the tag set when ARGV[1] == '1'; ARGV[2] = channel, ARGV[3] = message.
_DROP = """
local n = #KEYS
if ARGV[1] == '1' then n = n - 1 end
local dropped = redis.call('UNLINK', unpack(KEYS, 1, n))
if ARGV[1] == '1' then redis.call('SREM', KEYS[#KEYS], unpack(KEYS, 1, n)) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return dropped
"""
CHUNK = 500  # keys per Redis call of an invalidation: ~1 ms of Redis time, whatever the total
_EXPIRY = struct.Struct(">d")  # each Redis value starts with its expiry (unix time), for near copies


class RedisBackend:
    """Keys are `<prefix>k:<key>`, tag sets `<prefix>t:<tag>`, the epoch `<prefix>epoch`.

    The fill script and an invalidation's chunks touch several keys, so with Redis Cluster the prefix
    is a hash tag ("{aw}:", made so by create_cache): every key in one slot.
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
        self._drop_script = self.client.register_script(_DROP) if self.target.mode == CLUSTER else None

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
        """New epoch first (fills that read before it are refused), then the keys and each tag set's
        members, CHUNK at a time: every call is short, so a 100,000-session sign-out never blocks Redis
        for the other instances. Safe to repeat after a failure: keys are deleted again, and a tag
        set's members leave the set only together with their entries, so a retry continues where
        this one stopped and nothing is left undeleted.

        Returns how many entries were dropped. `token` (the writer's, given when there is a near cache)
        is the new epoch and the first line of every chunk's message; the writer then ends the
        invalidation with the token alone and waits for the other instances to acknowledge it
        (NearCache.announce, near_acks.py)."""
        token = token or os.urandom(12).hex()
        await self.client.set(self.epoch_key, token)
        dropped = 0
        names = [self.prefix + "k:" + k for k in keys]
        for start in range(0, len(names), CHUNK):
            dropped += await self._drop(names[start:start + CHUNK], None, token)
        for tag in tags:
            tag_set = self.prefix + "t:" + tag
            while members := await self.client.srandmember(tag_set, CHUNK):
                dropped += await self._drop([m.decode() for m in members], tag_set, token)
        return dropped

    async def _drop(self, names: list[str], tag_set: str | None = None, token: str = "") -> int:
        """Delete entries (and their names from `tag_set`) and tell every near cache, atomically.
        Returns how many of them existed."""
        message = token + "\n" + "\n".join(names)
        if self._drop_script is not None:
            keys = names if tag_set is None else [*names, tag_set]
            return await self._drop_script(keys=keys, args=["0" if tag_set is None else "1", self.channel, message])
        pipe = self.client.pipeline(transaction=True)
        pipe.unlink(*names)
        if tag_set is not None:
            pipe.srem(tag_set, *names)
        pipe.publish(self.channel, message)
        return (await pipe.execute())[0]

    async def flush_entries(self) -> int:
        """Every entry and tag set under the prefix, CHUNK names per call (what an overflow of remembered
        invalidations becomes, see Cache). The epoch changes first (fills that read before are refused);
        the epoch, the fence's marker and the near caches' registry stay; `*` on the channel empties
        every near cache. Returns how many names were deleted."""
        await self.client.set(self.epoch_key, os.urandom(12).hex())
        deleted = 0
        for kind in ("k:", "t:"):
            batch: list[bytes] = []
            async for name in self.client.scan_iter(match=glob_escape(self.prefix + kind) + "*", count=1000):
                batch.append(name)
                if len(batch) >= CHUNK:
                    deleted += await self.client.unlink(*batch)
                    batch = []
            if batch:
                deleted += await self.client.unlink(*batch)
        await self.client.publish(self.channel, FLUSH_ALL)
        return deleted

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
