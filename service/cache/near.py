"""Near cache: copies of hot Redis entries kept in process, dropped by invalidations from any instance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from ..cache_fence import FLUSH_ALL, pass_fence
from ..invalidation_subscriber import Subscription, master_address
from ..redis_connect import CLUSTER, PLAIN, connect, slot_master, subscriber_options
from .memory import MemoryBackend
from .near_acks import ANNOUNCE, Acks, Lease, new_instance_id, writer_of

if TYPE_CHECKING:
    from .redis_backend import RedisBackend

log = logging.getLogger("service.cache")


class NearCache:
    """Copies of Redis entries kept in this process, so a hot read does not leave it at all; and this
    instance's part in acknowledged invalidation (near_acks.py), as a writer and as a member.

    A copy is served only while this process is subscribed to the invalidation channel AND its lease
    is valid (it renewed its registry entry less than `lease` seconds ago, on the subscriber
    connection): every invalidation, from any instance, publishes the Redis keys it dropped, and they
    are dropped here as the bytes arrive. While the subscription is down (Redis gone, connection lost)
    the near cache is empty and unused, and it starts empty again once resubscribed, so nothing
    published meanwhile can have been missed. A copy lives at most `ttl` seconds and never past its
    Redis entry's own expiry; the epoch guard of MemoryBackend keeps a read that raced an invalidation
    from storing its old value.

    With `ttl` 0 (Sentinel or Cluster without near copies) or the cache disabled, the instance keeps no
    copies and is no member, but it still subscribes: for the failover fence, and to hear the
    acknowledgements of its own writes to the members.
    """

    RESUBSCRIBE_AFTER = 1.0
    LOST_AFTER = 5.0  # seconds without the answer to a renewal: the connection is dropped and made again
    PING_EVERY = 1.0  # seconds, without near copies (no lease to renew)

    def __init__(self, backend: "RedisBackend", url: str, max_entries: int, ttl: float, timeout: float,
                 lease: float = 0.25):
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
        self.ready = False  # subscribed, past the fence, and (a member) registered
        self.subscription: Subscription | None = None  # the current one
        self.instance_id = new_instance_id()
        self.lease = Lease(lease)
        self.acks = Acks(self.instance_id)
        self.member = f"{int(lease * 1000)} {self.instance_id}"
        self.registry = backend.prefix + "near"
        self.ack_channel = self.ack_channel_of(self.instance_id)
        self._channel = backend.channel.encode()
        self._announce = backend.client.register_script(ANNOUNCE)
        self.ack_timeouts = 0  # writes answered after a lease without every member's acknowledgement
        self._last_warning, self._warned_at = -1e9, 0
        self._closing = False
        self._member = True
        self._task: asyncio.Task | None = None

    @property
    def keeps_copies(self) -> bool:
        return self.ttl > 0 and self._member

    def ack_channel_of(self, instance_id: str) -> str:
        return f"{self.backend.channel}-ack:{instance_id}"

    def start(self, member: bool = True) -> None:
        """`member` False (the cache is disabled): no copies kept, only this instance's writes served."""
        self._member = member
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        # The subscription applies each message as its bytes arrive (invalidation_subscriber.py); this
        # loop (re)connects and renews the lease, and checks `_closing` at least once a renewal.
        while not self._closing:
            subscription = None
            try:
                if self.backend.target.mode == CLUSTER:  # the slot's master may have moved: look again
                    await self._close_client()
                    self.client = await slot_master(self.backend.target, self.backend.epoch_key,
                                                    **subscriber_options(self.timeout))
                subscription = await Subscription.open(
                    await master_address(self.client), [self.backend.channel, self.ack_channel],
                    self._on_message, self.timeout)
                self.subscription = subscription
                if self.fenced:
                    await pass_fence(self.client, self.backend.prefix, self.backend.epoch_key, self.backend.channel,
                                     keep=(self.registry,))
                self.memory.clear()
                await self._keep_lease(subscription)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._closing:
                    log.warning("near cache off until Redis is back: %s %s", type(exc).__name__, exc)
            finally:
                self.ready = False
                self.lease.end()
                self.memory.clear()
                if subscription is not None:
                    subscription.close()
            if not self._closing:
                await asyncio.sleep(self.RESUBSCRIBE_AFTER)

    async def _keep_lease(self, subscription: Subscription) -> None:
        """Renew the lease every quarter lease, until the connection is lost or the cache closes. An
        answer later than the lease lets the lease lapse meanwhile (copies not served, not dropped:
        the connection still delivers every message in order); none within LOST_AFTER drops it."""
        every = self.lease.renew_every if self.keeps_copies else self.PING_EVERY
        while not self._closing:
            started = asyncio.get_running_loop().time()
            async with asyncio.timeout(self.LOST_AFTER):
                if self.keeps_copies:
                    await self.lease.renew(subscription, self.registry, self.member)
                else:  # no member: only whether the connection is alive matters (the fence)
                    await subscription.call("PING")
            if self._closing:  # close() left the registry meanwhile: serving now would be unannounced
                return
            self.ready = True
            pause = every - (asyncio.get_running_loop().time() - started)
            if pause > 0:
                await asyncio.wait([subscription.lost], timeout=pause)
            if subscription.lost.done():
                error = subscription.lost.result()
                raise error if isinstance(error, BaseException) else ConnectionError(str(error))

    def _on_message(self, channel: bytes, data: bytes, send) -> None:
        if channel == self._channel:
            self._on_invalidation(data, send)
        else:  # our acknowledgement channel: "<token> <member id>"
            token, _, member = data.decode(errors="replace").partition(" ")
            self.acks.acknowledged(token, member)

    def _on_invalidation(self, data: bytes, send) -> None:
        if data == FLUSH_ALL:
            self.memory.clear()
            return
        if b"\n" in data:  # one chunk of an invalidation: its token, then the keys dropped
            self.memory.invalidate_now(self.backend.dropped_keys(data))
            return
        # The token alone ends an invalidation (the writer's ANNOUNCE): every chunk before it has been
        # applied above, so it is acknowledged now, in the same call, on the same connection.
        if not self.keeps_copies:
            return  # no member: no writer waits for us
        token = data.decode(errors="replace")
        writer = writer_of(token)
        if not writer:
            return  # an end without a writer id (an instance of an older version): nobody to answer
        if writer == self.instance_id:
            self.acks.acknowledged(token, self.instance_id)
        else:  # on the connection the message came on: the answer follows everything it applied
            send("PUBLISH", self.ack_channel_of(writer), f"{token} {self.instance_id}")

    # ---- the writer's side ---------------------------------------------------------------------------

    def new_token(self) -> str:
        return self.acks.new_token()

    def expect(self, token: str) -> None:
        """Before the invalidation is sent: acknowledgements may come back before the announce's reply."""
        self.acks.expect(token)

    def forget(self, token: str) -> None:
        self.acks.forget(token)

    async def announce(self, token: str) -> list[bytes]:
        """Publish the end of the invalidation `token`; returns the registry's members (Redis call)."""
        return await self._announce(keys=[self.registry], args=[self.backend.channel, token])

    async def acknowledged(self, token: str, members: list[bytes] | None) -> None:
        """Until every member has acknowledged `token` or can no longer serve what it invalidated.
        `members` None: the announce failed, nobody can be asked, so one whole lease is waited."""
        if members is None:
            self._timed_out("cache invalidation not announced; waited one near-cache lease (%.2f s)",
                            self.lease.seconds)
            await asyncio.sleep(self.lease.seconds)
            return
        late = await self.acks.wait(token, members, self.lease.seconds)
        if late:
            self._timed_out("cache invalidation not acknowledged within the near-cache lease by %s; their "
                            "near copies are not served until they renew", ", ".join(late))

    def _timed_out(self, message: str, *args) -> None:
        # Counted every time; logged at most once a second: every write waits for a stuck instance
        # until its registry entry lapses, and one line says it as well as a hundred.
        self.ack_timeouts += 1
        now = time.monotonic()
        if now - self._last_warning >= 1.0:
            skipped = self.ack_timeouts - self._warned_at - 1
            log.warning(message + (f" ({skipped} more since the last warning)" if skipped else ""), *args)
            self._last_warning, self._warned_at = now, self.ack_timeouts

    # ---- the copies ----------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        return self.memory.get_now(key) if self.ready and self.lease.valid else None

    def keep(self, key: str, value: bytes, seconds_left: float | None, epoch: int) -> None:
        ttl = self.ttl if seconds_left is None else min(self.ttl, seconds_left)
        if self.ready and self.keeps_copies and ttl > 0:
            self.memory.fill_now(key, value, ttl, (), epoch)

    def drop(self, keys: tuple[str, ...]) -> None:
        self.memory.invalidate_now(keys)

    async def close(self) -> None:
        self._closing = True
        self.ready = False
        self.lease.end()
        subscription = self.subscription
        if subscription is not None and self.keeps_copies and not subscription.lost.done():
            # Leave the registry at once: writers stop waiting for us now, not when the entry lapses.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout):
                    await subscription.call("ZREM", self.registry, self.member)
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
