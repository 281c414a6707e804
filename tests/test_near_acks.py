"""Acknowledged invalidation between instances (service/cache/near_acks.py), two instances in this
process on one Redis: a write is answered only after the other instance acknowledged; an instance that
cannot acknowledge (its subscriber hears nothing: paused, half-open) stops serving its near copies
within a lease and the writer goes on after one lease; a subscription that drops comes back, empty,
and acknowledges again; an instance that shuts down leaves the registry at once."""

import asyncio
import uuid

from service.app import create_app
from service.data import keys
from service.deps import DEPS
from tests.conftest import READ, REDIS_PREFIX_ROOT, WRITE, make_settings, unique_email


async def until(condition, timeout=10.0, what="condition"):
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} not met within {timeout} s")


def near(client):
    return client.server.app[DEPS].cache.near


async def instances(aiohttp_client, database_url, redis_url, **overrides):
    """Two instances sharing one Redis namespace, as in production; both subscribed and registered."""
    prefix = f"{REDIS_PREFIX_ROOT}{uuid.uuid4().hex[:8]}:"
    clients = [await aiohttp_client(create_app(make_settings(database_url, redis_url, cache_prefix=prefix,
                                                             **overrides))) for _ in range(2)]
    await until(lambda: all(near(c).ready for c in clients), what="near caches registered")
    return clients


async def registry(client):
    n = near(client)
    return {m.decode().partition(" ")[2] for m in await n.backend.client.zrange(n.registry, 0, -1)}


async def name_on(client, path):
    r = await client.get(path, headers=READ)
    assert r.status == 200, await r.text()
    return (await r.json())["name"]


async def user_cached_on(writer, reader):
    """A user created on `writer` whose near copy `reader` holds; (path, cache key)."""
    r = await writer.post("/v1/users", json={"email": unique_email(), "name": "Ada"}, headers=WRITE)
    assert r.status == 201
    user = await r.json()
    path, key = f"/v1/users/{user['id']}", keys.user_by_id(user["id"])
    assert await name_on(reader, path) == "Ada"
    assert near(reader).get(key) is not None
    return path, key


async def rename(client, path, name):
    r = await client.patch(path, json={"name": name}, headers=WRITE)
    assert r.status == 200, await r.text()


async def test_a_write_is_answered_only_once_the_other_instance_acknowledged(
        aiohttp_client, migrated_database_url, redis_url, monkeypatch):
    # A lease far longer than the test: only B's acknowledgement can release A's write.
    a, b = await instances(aiohttp_client, migrated_database_url, redis_url, cache_near_lease=30.0)
    assert await registry(a) == {near(a).instance_id, near(b).instance_id}
    path, key = await user_cached_on(a, b)
    held = []
    applied = near(b)._on_invalidation

    def hold_acknowledgements(data, send):  # B applies each message, but keeps its answers back
        applied(data, lambda *command: held.append((send, command)))

    monkeypatch.setattr(near(b), "_on_invalidation", hold_acknowledgements)
    patch = asyncio.ensure_future(rename(a, path, "Grace"))
    await until(lambda: held, what="B heard the end of the invalidation")
    assert near(b).get(key) is None  # dropped before it would acknowledge
    await asyncio.sleep(0.2)  # A had every chance to answer: it does not, it waits for B
    assert not patch.done()
    for send, command in held:
        send(*command)
    await patch
    assert near(a).ack_timeouts == 0
    assert await name_on(b, path) == "Grace"


async def test_an_instance_that_hears_nothing_stops_serving_its_copies_and_the_writer_goes_on(
        aiohttp_client, migrated_database_url, redis_url, caplog):
    a, b = await instances(aiohttp_client, migrated_database_url, redis_url, cache_near_lease=1.0)
    path, key = await user_cached_on(a, b)
    # B's subscriber reads nothing more (a stalled link, a paused process): it can neither drop its
    # copy nor acknowledge, nor renew its lease.
    transport = near(b).subscription.protocol.transport
    transport.pause_reading()
    try:
        await rename(a, path, "Grace")  # answered after one lease without B's acknowledgement
        assert key in near(b).memory.entries  # B still holds the old copy...
        assert near(b).get(key) is None  # ...but does not serve it: its lease is over
        assert await name_on(b, path) == "Grace"  # from Redis (and the database)
        assert near(a).ack_timeouts == 1
        r = await a.get("/metrics", headers=READ)
        assert "cache_near_ack_timeouts_total 1.0" in await r.text()
        assert f"not acknowledged within the near-cache lease by {near(b).instance_id}" in caplog.text
    finally:
        transport.resume_reading()
    # B reads what it missed before the reply that renews its lease: the copy is gone when it serves again.
    await until(lambda: near(b).lease.valid, what="B's lease renewed")
    assert key not in near(b).memory.entries
    assert await name_on(b, path) == await name_on(b, path) == "Grace"
    assert near(b).get(key) is not None  # served from B's near cache again
    await rename(a, path, "Lovelace")
    assert near(a).ack_timeouts == 1  # B acknowledged this one
    assert await name_on(b, path) == "Lovelace"


async def test_a_dropped_subscription_is_not_trusted_and_comes_back_empty(
        aiohttp_client, migrated_database_url, redis_url):
    a, b = await instances(aiohttp_client, migrated_database_url, redis_url, cache_near_lease=1.0)
    path, key = await user_cached_on(a, b)
    old = near(b).subscription
    transport = old.protocol.transport
    # Redis drops B's subscriber while B cannot notice (a half-open connection): PUBLISH's count of
    # receivers would no longer include B, but B is still in the registry, so A waits for it.
    transport.pause_reading()
    host, port = transport.get_extra_info("sockname")[:2]
    await near(a).backend.client.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")
    try:
        await rename(a, path, "Grace")
        assert near(b).get(key) is None
        assert await name_on(b, path) == "Grace"
        assert near(a).ack_timeouts == 1
    finally:
        transport.resume_reading()
    # B notices the closed connection, empties its near cache, subscribes and registers again.
    await until(lambda: near(b).subscription is not old and near(b).ready, what="B resubscribed")
    assert await name_on(b, path) == await name_on(b, path) == "Grace"
    assert near(b).get(key) is not None
    assert await registry(a) == {near(a).instance_id, near(b).instance_id}
    await rename(a, path, "Lovelace")
    assert near(a).ack_timeouts == 1  # acknowledged through the new subscription
    assert await name_on(b, path) == "Lovelace"


async def test_an_instance_that_shuts_down_leaves_the_registry(aiohttp_client, migrated_database_url, redis_url):
    a, b = await instances(aiohttp_client, migrated_database_url, redis_url, cache_near_lease=30.0)
    assert await registry(a) == {near(a).instance_id, near(b).instance_id}
    await b.close()
    # Writers stop waiting for it at once, not when its entry lapses (here: 2 minutes).
    assert await registry(a) == {near(a).instance_id}
    path, _ = await user_cached_on(a, a)
    await rename(a, path, "Grace")
    assert near(a).ack_timeouts == 0


async def test_the_failover_fence_flushes_the_namespace_but_keeps_the_registry(
        aiohttp_client, migrated_database_url, redis_url):
    # An instance that passed the fence and registered must stay in the registry when another
    # instance passes the fence a moment later and flushes: writers would stop waiting for it.
    from service.cache_fence import pass_fence

    a, b = await instances(aiohttp_client, migrated_database_url, redis_url)
    n = near(a)
    await n.backend.client.set(n.backend.prefix + "k:some-entry", b"x")
    assert await pass_fence(n.client, n.backend.prefix, n.backend.epoch_key, n.backend.channel,
                            keep=(n.registry,))  # no replication id recorded yet: it flushes
    assert await n.backend.client.exists(n.backend.prefix + "k:some-entry") == 0
    assert await registry(a) == {near(a).instance_id, near(b).instance_id}


async def test_an_instance_without_near_copies_is_no_member_yet_its_writes_wait_for_the_members(
        aiohttp_client, migrated_database_url, redis_url, monkeypatch):
    # CACHE_ENABLED=false (or Sentinel/Cluster with CACHE_NEAR_TTL=0): the instance keeps no copies, so
    # no writer waits for it, but it subscribes to hear the acknowledgements of its own writes.
    prefix = f"{REDIS_PREFIX_ROOT}{uuid.uuid4().hex[:8]}:"
    a = await aiohttp_client(create_app(make_settings(migrated_database_url, redis_url, cache_prefix=prefix,
                                                      cache_enabled=False)))
    b = await aiohttp_client(create_app(make_settings(migrated_database_url, redis_url, cache_prefix=prefix,
                                                      cache_near_lease=30.0)))
    await until(lambda: near(a).ready and near(b).ready, what="both subscribed")
    assert await registry(a) == {near(b).instance_id}
    path, key = await user_cached_on(b, b)
    held = []
    applied = near(b)._on_invalidation
    monkeypatch.setattr(near(b), "_on_invalidation",
                        lambda data, send: applied(data, lambda *command: held.append((send, command))))
    patch = asyncio.ensure_future(rename(a, path, "Grace"))
    await until(lambda: held, what="B heard the end of the invalidation")
    assert near(b).get(key) is None
    await asyncio.sleep(0.2)
    assert not patch.done()  # A waits for B
    for send, command in held:
        send(*command)
    await patch
    assert near(a).ack_timeouts == 0
    assert await name_on(b, path) == "Grace"
