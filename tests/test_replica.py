"""DATABASE_READ_URL: reads come from a real streaming replica (cache fills from the primary); the service
survives its loss."""

import asyncio

import asyncpg
import pytest

from service import migrate
from service.app import create_app
from tests.conftest import READ, WRITE, make_settings, unique_email
from tests.pg_cluster import Cluster


@pytest.fixture
def clusters():
    primary = Cluster().initdb().start()
    replica = Cluster().basebackup_from(primary).start()
    yield primary, replica
    replica.destroy()
    primary.destroy()


async def wait_for(predicate, timeout=20):
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_reads_come_from_the_replica_and_survive_its_loss(aiohttp_client, clusters):
    primary, replica = clusters
    admin = await asyncpg.connect(primary.url())
    await admin.execute("CREATE DATABASE app")
    await admin.close()
    await asyncio.to_thread(migrate.apply, primary.url("app"))
    settings = make_settings(primary.url("app"), None, database_read_url=replica.url("app"), cache_enabled=False)
    client = await aiohttp_client(create_app(settings))

    r = await client.post("/v1/users", json={"email": unique_email(), "name": "before"}, headers=WRITE)
    assert r.status == 201
    user = await r.json()

    async def replica_has_user():
        try:
            conn = await asyncpg.connect(replica.url("app"))
        except (OSError, asyncpg.PostgresError):
            return False
        try:
            return await conn.fetchval("SELECT count(*) FROM users WHERE id = $1", user["id"]) == 1
        except asyncpg.PostgresError:
            return False
        finally:
            await conn.close()

    await wait_for(replica_has_user)

    # Freeze the replica, change the row on the primary: a read that shows the old name came from the replica.
    rconn = await asyncpg.connect(replica.url("app"))
    await rconn.execute("SELECT pg_wal_replay_pause()")
    pconn = await asyncpg.connect(primary.url("app"))
    await pconn.execute("UPDATE users SET name = 'after' WHERE id = $1", user["id"])
    r = await client.get(f"/v1/users/{user['id']}", headers=READ)
    assert (await r.json())["name"] == "before"
    r = await client.get("/v1/users", params={"id": f"eq.{user['id']}"}, headers=READ)
    assert (await r.json())["data"][0]["name"] == "before"
    # A write answers from the primary: the request sees its own write.
    r = await client.patch(f"/v1/users/{user['id']}", json={"image": "x.png"}, headers=WRITE)
    assert (await r.json())["name"] == "after"
    # With the cache on, a read that fills it comes from the primary: the replica (still paused, so
    # behind) must not put the row as it was before the write into the cache for its whole TTL.
    cached = await aiohttp_client(create_app(make_settings(primary.url("app"), None,
                                                           database_read_url=replica.url("app"))))
    r = await cached.patch(f"/v1/users/{user['id']}", json={"name": "cached after"}, headers=WRITE)
    assert r.status == 200
    for _ in range(2):  # the fill, then the hit
        r = await cached.get(f"/v1/users/{user['id']}", headers=READ)
        assert (await r.json())["name"] == "cached after"
    await rconn.execute("SELECT pg_wal_replay_resume()")
    await rconn.close()
    await pconn.close()

    # The replica stops: reads keep answering, from the primary.
    replica.stop("immediate")
    for _ in range(3):
        r = await client.get(f"/v1/users/{user['id']}", headers=READ)
        assert r.status == 200
        assert (await r.json())["name"] == "cached after"
    r = await client.get("/v1/users", headers=READ)
    assert r.status == 200
    r = await client.get("/readyz")
    assert r.status == 200
