"""Faults and races: a database outage under load, pool exhaustion, slow clients, concurrent writers."""

import asyncio
import uuid

import asyncpg
import pytest

from service.app import create_app
from tests.conftest import READ, WRITE, make_settings, unique_email
from tests.outage import check_writes, run_outage, run_redis_outage
from tests.pg_cluster import Cluster
from tests.redis_server import RedisServer


@pytest.fixture
def cluster():
    c = Cluster().initdb().start()
    yield c
    c.destroy()


async def test_database_outage_under_load(aiohttp_client, cluster, redis_url):
    tally = await run_outage(aiohttp_client, cluster, redis_url, make_settings, outage_seconds=3)
    writes = await check_writes(cluster.url("outage"), tally)
    assert tally.cached_read_failures == 0, tally.by_status  # the cache kept answering
    assert set(tally.by_status) <= {"cached-read 200", "list 200", "list 503", "write 201", "write 503"}, \
        tally.by_status
    assert tally.by_status.get("write 503", 0) > 0 and tally.by_status.get("list 503", 0) > 0  # the outage was felt
    assert tally.missing_retry_after == 0
    assert tally.slowest < 5.0, "no hung request"
    assert writes["acknowledged"] == writes["acknowledged_found"], writes  # nothing acknowledged is lost
    assert writes["half_applied"] == 0, writes
    # Recovered without a restart: writes succeed again after the outage.
    assert writes["acknowledged"] > 0


async def test_redis_outage_under_load_fails_no_request(aiohttp_client, migrated_database_url):
    server = RedisServer()
    await server.start()
    try:
        tally = await run_redis_outage(aiohttp_client, server, migrated_database_url, make_settings, outage_seconds=2)
    finally:
        server.kill()
    assert tally.by_status == {"200": tally.sent}, tally.by_status  # zero failed requests
    assert tally.errors > 0  # the outage was felt by the cache...
    assert tally.hits_before_stop > 0
    assert tally.hits_at_end > tally.hits_at_restart  # ...and it serves hits again on its own


async def test_pool_exhaustion_queues_then_answers_503_never_hangs(aiohttp_client, migrated_database_url, redis_url):
    settings = make_settings(migrated_database_url, redis_url, pool_min_size=1, pool_max_size=2,
                             pool_acquire_timeout=0.5, cache_enabled=False)
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/users", json={"email": unique_email("pool")}, headers=WRITE)
    user = await r.json()
    # Hold the user's row lock from outside: PATCHes wait in the database, each holding a pool connection.
    blocker = await asyncpg.connect(migrated_database_url)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user["id"])
    try:
        patches = [asyncio.create_task(client.patch(f"/v1/users/{user['id']}", json={"name": f"n{i}"}, headers=WRITE))
                   for i in range(2)]
        await asyncio.sleep(0.3)
        started = asyncio.get_running_loop().time()
        others = await asyncio.gather(*(client.get(f"/v1/users/{user['id']}", headers=READ) for _ in range(5)))
        waited = asyncio.get_running_loop().time() - started
        assert {o.status for o in others} == {503}
        assert all(o.headers.get("Retry-After") for o in others)
        assert waited < 3, "the queue wait is bounded by pool_acquire_timeout"
    finally:
        await tx.rollback()
        await blocker.close()
    assert {(await p).status for p in patches} == {200}  # the queued writes finish once the lock goes
    r = await client.get(f"/v1/users/{user['id']}", headers=READ)
    assert r.status == 200


async def test_slow_client_times_out_without_holding_the_pool(aiohttp_client, migrated_database_url, redis_url):
    settings = make_settings(migrated_database_url, redis_url, pool_max_size=1, body_read_timeout=0.5)
    client = await aiohttp_client(create_app(settings))
    host, port = client.server.host, client.server.port
    slow = []
    for _ in range(3):  # three clients that announce a body and send half of it
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-write-token\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":")
        await writer.drain()
        slow.append((reader, writer))
    # Meanwhile the single pool connection serves everyone else.
    r = await client.post("/v1/users", json={"email": unique_email("fast")}, headers=WRITE)
    assert r.status == 201
    for reader, writer in slow:
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert b" 408 " in status_line
        writer.close()


async def test_concurrent_updates_of_one_user_last_write_wins(client, deps):
    r = await client.post("/v1/users", json={"email": unique_email("lww")}, headers=WRITE)
    user = await r.json()
    answers = await asyncio.gather(*(client.patch(f"/v1/users/{user['id']}", json={"name": f"name-{i}"},
                                                  headers=WRITE) for i in range(30)))
    assert {a.status for a in answers} == {200}
    bodies = [await a.json() for a in answers]
    final = await deps.db.fetchrow('SELECT name, "updatedAt" FROM users WHERE id = $1', user["id"])
    # The stored row is one of the writes, and the one whose answer has the greatest updatedAt.
    newest = max(bodies, key=lambda b: b["updatedAt"])
    assert final["name"] in {b["name"] for b in bodies}
    assert final["updatedAt"] == newest["updatedAt"]
    assert all(b["updatedAt"] >= user["updatedAt"] for b in bodies)
    r = await client.get(f"/v1/users/{user['id']}", headers=READ)
    assert (await r.json())["name"] == final["name"]


async def test_concurrent_session_update_and_delete(client, deps):
    r = await client.post("/v1/users", json={"email": unique_email("sess")}, headers=WRITE)
    user = await r.json()
    for round_ in range(10):
        token = f"race-{uuid.uuid4().hex}"
        r = await client.post("/v1/sessions", json={"sessionToken": token, "userId": user["id"],
                                                    "expires": "2099-01-01T00:00:00Z"}, headers=WRITE)
        assert r.status == 201
        await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)  # cache it
        update, delete = await asyncio.gather(
            client.post("/v1/sessions/update", json={"sessionToken": token, "expires": "2098-01-01T00:00:00Z"},
                        headers=WRITE),
            client.post("/v1/sessions/delete", json={"sessionToken": token}, headers=WRITE))
        assert delete.status == 200
        assert update.status in (200, 404)
        # Whatever the order, the session is gone, for the database and for the cache.
        assert await deps.db.fetchval('SELECT count(*) FROM sessions WHERE "sessionToken" = $1', token) == 0
        r = await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)
        assert r.status == 404


async def test_same_email_race_at_higher_count(client):
    email = unique_email("race")
    answers = await asyncio.gather(*(client.post("/v1/users", json={"email": email}, headers=WRITE)
                                     for _ in range(200)))
    statuses = sorted(a.status for a in answers)
    assert statuses.count(201) == 1 and statuses.count(409) == 199


async def test_verification_token_race_at_higher_count(client):
    token = uuid.uuid4().hex
    r = await client.post("/v1/verification-tokens", json={"identifier": "race@example.com", "token": token,
                                                          "expires": "2099-01-01T00:00:00Z"}, headers=WRITE)
    assert r.status == 201
    answers = await asyncio.gather(*(client.post("/v1/verification-tokens/use",
                                                 json={"identifier": "race@example.com", "token": token},
                                                 headers=WRITE) for _ in range(300)))
    statuses = [a.status for a in answers]
    assert statuses.count(200) == 1 and statuses.count(404) == 299


INJECTIONS = ["'; DROP TABLE users; --", "\" OR 1=1 --", "1' OR '1'='1", "$1", "%", "\\", "') ; DELETE FROM sessions; --"]


async def test_injection_strings_in_every_parameter_change_nothing(client, deps):
    async def counts():
        return {t: await deps.db.fetchval(f"SELECT count(*) FROM {t}") for t in ("users", "sessions", "accounts")}

    r = await client.post("/v1/users", json={"email": unique_email("inj")}, headers=WRITE)
    user_id = (await r.json())["id"]
    before = await counts()
    for evil in INJECTIONS:
        calls = [
            client.get(f"/v1/users/{evil}", headers=READ),
            client.get(f"/v1/users/by-email/{evil}", headers=READ),
            client.get(f"/v1/users/by-account/{evil}/{evil}", headers=READ),
            client.get("/v1/users", params={"email": f"eq.{evil}", "sort": evil}, headers=READ),
            client.get("/v1/users", params={"name": f"like.{evil}"}, headers=READ),
            client.get("/v1/users", params={evil: "eq.x"}, headers=READ),
            client.get(f"/v1/users/{user_id}", params={"select": evil}, headers=READ),
            client.patch(f"/v1/users/{evil}", json={"name": evil}, headers=WRITE),
            client.post("/v1/sessions/lookup", json={"sessionToken": evil}, headers=READ),
            client.post("/v1/sessions/delete", json={"sessionToken": evil}, headers=WRITE),
            client.post("/v1/verification-tokens/use", json={"identifier": evil, "token": evil}, headers=WRITE),
            client.delete(f"/v1/accounts/{evil}/{evil}", headers=WRITE),
            client.get("/v1/charts", params={"userId": evil, "chartType": evil}, headers=READ),
            client.delete("/v1/charts", params={"userId": evil}, headers=WRITE),
        ]
        for response in await asyncio.gather(*calls):
            assert response.status < 500, (evil, response.url, response.status)
    r = await client.patch(f"/v1/users/{user_id}", json={"name": INJECTIONS[0]}, headers=WRITE)
    assert (await r.json())["name"] == INJECTIONS[0]  # stored as data, verbatim
    after = await counts()
    assert after["users"] >= before["users"] and after["sessions"] >= before["sessions"]
    assert await deps.db.fetchval("SELECT to_regclass('users') IS NOT NULL")
