"""Acknowledged invalidation: a write is answered only once no other instance can serve a near copy
that the write invalidated.

Publishing an invalidation is not enough: Redis hands the message to every subscriber's socket, but
when it reaches another instance depends on that instance's network and load, and the write's client
may already be asking that instance (tests/test_many_instances.py). So:

* Each instance that keeps near copies is a MEMBER: it holds an entry in the registry `<prefix>near`
  (a sorted set: "<lease ms> <instance id>", scored by when it lapses, Redis time) and renews it
  every quarter lease with a script sent on its subscriber connection (RENEW).
* A member serves a near copy only while its LEASE is valid: `CACHE_NEAR_LEASE` seconds from the
  moment it sent its last renewal whose reply has come back. That reply comes after every message
  Redis published before the renewal ran (one connection, in order), and each message is applied as
  its bytes arrive: a valid lease means "I have applied everything published up to
  CACHE_NEAR_LEASE ago". A member that stops hearing Redis — paused, overloaded, half-open
  connection, Redis gone — stops serving its copies within one lease, and no one tells it to.
* A writer ends each invalidation with an ANNOUNCE script: it publishes the invalidation's token
  alone and returns the registry's members, in one step. Every member that receives the token (after
  the keys it invalidates, on the same connection) publishes an acknowledgement on the writer's own
  channel `<prefix>invalidated-ack:<writer id>`; the writer's own subscriber just notes it. O(N)
  messages a write: each member answers one writer, only the writer listens.
* The write is answered when every member of the snapshot acknowledged, or else after one lease
  (counted from the announce's reply): a member that did not acknowledge has, by then, either applied
  the invalidation or stopped serving (its last renewal ran before the announce, so its lease is
  over). The writer counts that case (cache_near_ack_timeouts) and logs which members were late.

Why not wait for PUBLISH's count of receivers: it leaves out a subscriber that Redis already dropped
but which has not noticed (a half-open connection) and still serves copies, and on Redis Cluster it
counts only the publishing node's subscribers. The registry names every member that may serve.

A member registers before it serves: its first renewal's reply proves it received everything
published before it was in the registry, and everything published afterwards waits for it. A
registry entry outlives its member's lease (ENTRY_LEASES leases), so a writer never misses a serving
member even if a renewal is late or the Redis clock steps forward by less than that margin; a member
that died is waited for (at most one lease a write) until its entry lapses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field

log = logging.getLogger("service.cache")

RENEWALS_PER_LEASE = 4
ENTRY_LEASES = 4  # a registry entry lives this many leases past its last renewal

# KEYS[1] = registry; ARGV[1] = member ("<lease ms> <id>"), ARGV[2] = ms the entry lives. Redis time,
# not the instance's: every instance's entries are compared with one clock. Lapsed entries (instances
# gone) are removed here and by ANNOUNCE; the registry itself expires when no member renews.
RENEW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] = registry; ARGV[1] = invalidation channel, ARGV[2] = the token. The members are read in the
# same step as the publish: whoever registers afterwards has received the message before it serves.
ANNOUNCE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PUBLISH', ARGV[1], ARGV[2])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def new_instance_id() -> str:
    """Unique per process and readable in logs: host, pid, and a random part (pids are reused)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{os.urandom(3).hex()}"


def writer_of(token: str) -> str:
    """Tokens are `<writer id>.<random>` (new_token), so that every member knows whom to answer."""
    return token.rpartition(".")[0]


@dataclass
class _Wait:
    acked: set[str] = field(default_factory=set)  # may come before the announce's reply does
    outstanding: dict[str, float] | None = None  # member id -> its lease (s), once the snapshot is known
    done: asyncio.Future | None = None


class Acks:
    """The writer's side: which members acknowledged which invalidation."""

    def __init__(self, instance_id: str):
        self.instance_id = instance_id
        self._waits: dict[str, _Wait] = {}

    def new_token(self) -> str:
        return f"{self.instance_id}.{os.urandom(12).hex()}"

    def expect(self, token: str) -> None:
        self._waits[token] = _Wait()

    def forget(self, token: str) -> None:
        self._waits.pop(token, None)

    def acknowledged(self, token: str, member: str) -> None:
        wait = self._waits.get(token)
        if wait is None:
            return  # a late acknowledgement of a write already answered
        wait.acked.add(member)
        if wait.outstanding is not None:
            wait.outstanding.pop(member, None)
            if not wait.outstanding and wait.done is not None and not wait.done.done():
                wait.done.set_result(None)

    async def wait(self, token: str, members: list[bytes], default_lease: float) -> list[str]:
        """Until every member of the announce's snapshot acknowledged `token`, at most the longest of
        their leases (`default_lease` for an entry whose lease cannot be read). Returns the members
        that did not (empty: all did)."""
        wait = self._waits[token]
        outstanding = {}
        for entry in members:
            lease_ms, _, member = entry.decode(errors="replace").partition(" ")
            if member not in wait.acked:
                try:
                    outstanding[member] = max(int(lease_ms) / 1000, 0.0)
                except ValueError:
                    outstanding[member] = default_lease
        if not outstanding:
            return []
        wait.outstanding = outstanding
        wait.done = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(max(outstanding.values())):
                await wait.done
            return []
        except TimeoutError:
            return sorted(wait.outstanding)


class Lease:
    """The member's side: whether its near copies may be served now."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.until = 0.0  # time.monotonic() after which the copies are not served

    @property
    def valid(self) -> bool:
        return time.monotonic() < self.until

    def end(self) -> None:
        self.until = 0.0

    @property
    def entry_ms(self) -> int:
        return max(1, int(self.seconds * ENTRY_LEASES * 1000))

    @property
    def renew_every(self) -> float:
        return self.seconds / RENEWALS_PER_LEASE

    async def renew(self, subscription, registry: str, member: str) -> None:
        """One renewal on the subscriber connection. The lease runs from the moment it was SENT:
        the script ran later than that, so the registry entry outlives the lease."""
        sent = time.monotonic()
        await subscription.call("EVAL", RENEW, 1, registry, member, self.entry_ms)
        self.until = max(self.until, sent + self.seconds)
