"""The cache on Redis Sentinel and on Redis Cluster: scripts and pub/sub invalidation work, and a
master failover never leads to a stale read, even when the failover loses an invalidation.

Two service instances share the database and Redis (each with its near cache). Each test first loses
an invalidation on purpose (the replica is frozen while a rename's invalidation reaches the master,
then the master is killed and the frozen replica promoted: it still holds the old entry), then kills
the new master under load. One topology per module, started once.
"""

import asyncio
import uuid

import aiohttp
import pytest

from service.deps import DEPS
from tests.conftest import READ, REDIS_PREFIX_ROOT, WRITE, make_settings, unique_email
from tests.failover_load import Load, serve_app
from tests.redis_ha import ClusterSetup, SentinelSetup
from tests.test_pg_failover import report


def _running(setup):
    try:
        yield setup.start()
    finally:
        setup.stop()


@pytest.fixture(scope="module")
def sentinel():
    yield from _running(SentinelSetup())


@pytest.fixture(scope="module")
def cluster():
    yield from _running(ClusterSetup())


async def two_instances(database_url, redis_url):
    prefix = f"{REDIS_PREFIX_ROOT}{uuid.uuid4().hex[:8]}:"
    runners, bases = [], []
    for _ in range(2):
        runner, base = await serve_app(make_settings(database_url, redis_url, cache_prefix=prefix,
                                                     retry_after_seconds=1))
        runners.append(runner)
        bases.append(base)
    await wait_caches_ready(runners)
    # Both are members of the near caches' registry on the cache slot's master (near_acks.py): the
    # renewals, sent on the subscriber connection, reach the master through Sentinel and Cluster.
    cache = runners[0].app[DEPS].cache
    members = {m.decode().partition(" ")[2] for m in await cache.backend.client.zrange(cache.near.registry, 0, -1)}
    assert members == {r.app[DEPS].cache.near.instance_id for r in runners}
    return runners, bases


async def wait_caches_ready(runners, timeout=20):
    for _ in range(int(timeout / 0.05)):
        if all(r.app[DEPS].cache.near.ready for r in runners):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("near caches did not subscribe")


async def read_name(http, base, user_id):
    async with http.get(f"{base}/v1/users/{user_id}", headers=READ) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["name"]


async def lose_an_invalidation_in_a_failover(runners, bases, master, replica, pause, resume, kill, wait_master,
                                             primary_client):
    """Scenario 1: the promoted replica holds an entry whose invalidation only the dead master saw."""
    a, b = bases
    async with aiohttp.ClientSession() as http:
        async with http.post(a + "/v1/users", json={"email": unique_email(), "name": "old"}, headers=WRITE) as r:
            assert r.status == 201
            user = await r.json()
        assert await read_name(http, b, user["id"]) == "old"  # cached in Redis and in B's near cache
        assert await read_name(http, b, user["id"]) == "old"
        await asyncio.sleep(0.2)  # the entry reaches the replica (asserted below through the stale read)
        pause(replica)
        # Cut the replication link too: what the master sends later must not wait in the frozen
        # replica's socket buffer (it would be applied on resume, and nothing would be lost).
        primary_client.execute_command("CLIENT", "KILL", "TYPE", "replica")
        try:
            async with http.patch(f"{a}/v1/users/{user['id']}", json={"name": "new"}, headers=WRITE) as r:
                assert r.status == 200
            kill(master)
        finally:
            resume(replica)
        # From the rename's answer on, every read says "new", during and after the failover.
        loop = asyncio.get_running_loop()
        waiting = loop.run_in_executor(None, wait_master, replica)
        while not waiting.done():
            for base in bases:
                assert await read_name(http, base, user["id"]) == "new"
            await asyncio.sleep(0.05)
        await waiting
        await wait_caches_ready(runners)
        # The cache is in use again within seconds of the failover (not merely bypassed).
        hits = [r.app[DEPS].cache.stats.hits for r in runners]
        for _ in range(100):
            for base in bases:
                assert await read_name(http, base, user["id"]) == "new"
            if all(r.app[DEPS].cache.stats.hits > h for r, h in zip(runners, hits)):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the cache was not used again after the failover")


async def kill_master_under_load(bases, kill_and_wait, scenario):
    """Scenario 2: renames on one instance, reads at once on the other, creates, while the master dies."""
    load = Load(bases)
    await load.run_while(kill_and_wait, creators=2, renamers=3, readers=2, settle=3.0)
    assert not load.unexpected, load.unexpected[:5]
    assert load.stale_reads == 0
    figures = load.figures()
    report(scenario, figures)
    return load


async def test_sentinel_failover_loses_no_invalidation(sentinel, migrated_database_url):
    runners, bases = await two_instances(migrated_database_url, sentinel.url)
    try:
        master, replica = sentinel.master_port(), sentinel.replica
        await lose_an_invalidation_in_a_failover(
            runners, bases, master, replica, sentinel.pause, sentinel.resume, sentinel.kill,
            sentinel.wait_master, sentinel.client(master))
        await asyncio.to_thread(sentinel.revive, master)

        async def kill_and_wait():
            current = sentinel.master_port()
            await asyncio.to_thread(sentinel.kill, current)
            await asyncio.to_thread(sentinel.wait_master, master)
            await wait_caches_ready(runners)

        load = await kill_master_under_load(bases, kill_and_wait, "redis sentinel master killed")
        await load.check_persisted(migrated_database_url)
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_cluster_failover_loses_no_invalidation(cluster, migrated_database_url):
    runners, bases = await two_instances(migrated_database_url, cluster.url)
    try:
        epoch_key = runners[0].app[DEPS].cache.backend.epoch_key
        assert epoch_key.startswith("{")  # one hash slot for the cache's keys
        master, replica = cluster.slot_owner(epoch_key)
        await lose_an_invalidation_in_a_failover(
            runners, bases, master, replica, cluster.pause, cluster.resume, cluster.kill,
            lambda port: cluster.wait_master(epoch_key, port), cluster.client(master))
        await asyncio.to_thread(cluster.revive, master)

        async def kill_and_wait():
            current, successor = cluster.slot_owner(epoch_key)
            await asyncio.to_thread(cluster.kill, current)
            await asyncio.to_thread(cluster.wait_master, epoch_key, successor)
            await wait_caches_ready(runners)

        load = await kill_master_under_load(bases, kill_and_wait, "redis cluster slot master killed")
        await load.check_persisted(migrated_database_url)
    finally:
        for runner in runners:
            await runner.cleanup()
