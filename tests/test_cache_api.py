"""The cache through the HTTP app with a real Redis: hot reads served from the cache, every write path
invalidating what it changes, single-flight and "not found" caching, stats and metrics, and Redis going
away (killed, or paused) and coming back.

An entry is proven to be served from the cache by changing its row behind the service's back (raw SQL)
and still reading the old value; a write through the API must then show the new one at once.
"""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from service.app import create_app
from service.data import keys
from service.deps import DEPS
from service.queries import Q
from tests.conftest import READ, WRITE, make_settings, unique_email
from tests.redis_server import RedisServer

# ---- helpers ----------------------------------------------------------------------------------------

@pytest.fixture
async def sql(settings):
    """A connection of our own: writes behind the service's (and its cache's) back."""
    conn = await asyncpg.connect(settings.database_url)
    yield conn
    await conn.close()


async def create_user(client, **fields):
    body = {"email": unique_email(), **fields}
    r = await client.post("/v1/users", json=body, headers=WRITE)
    assert r.status == 201, await r.text()
    return await r.json()


async def create_session(client, user_id, expires="2030-01-01T00:00:00.000Z"):
    token = f"tok-{uuid.uuid4().hex}"
    r = await client.post("/v1/sessions", headers=WRITE,
                          json={"sessionToken": token, "userId": user_id, "expires": expires})
    assert r.status == 201, await r.text()
    return token


async def get(client, path, status=200):
    r = await client.get(path, headers=READ)
    assert r.status == status, await r.text()
    return await r.json()


async def lookup(client, token, status=200):
    r = await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)
    assert r.status == status, await r.text()
    return await r.json()


async def stats(client):
    return await get(client, "/v1/cache/stats")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class QueryCounter:
    """Wraps deps.read_db.fetchrow and counts the calls per SQL statement."""

    def __init__(self, monkeypatch, deps):
        self.counts: dict[str, int] = {}
        real = deps.read_db.fetchrow

        async def fetchrow(sql, *args):
            self.counts[sql] = self.counts.get(sql, 0) + 1
            return await real(sql, *args)

        monkeypatch.setattr(deps.read_db, "fetchrow", fetchrow)

    def __getitem__(self, sql):
        return self.counts.get(sql, 0)


# ---- stats and metrics ------------------------------------------------------------------------------

async def test_stats_shape_and_counts_match_what_happened(client):
    assert await stats(client) == {"hits": 0, "misses": 0, "hitRate": 0.0, "errors": 0, "backend": "redis"}
    user = await create_user(client)
    assert await stats(client) == {"hits": 0, "misses": 0, "hitRate": 0.0, "errors": 0, "backend": "redis"}
    for _ in range(4):
        await get(client, f"/v1/users/{user['id']}")
    await get(client, f"/v1/users/{uuid.uuid4().hex}", 404)
    await get(client, f"/v1/users/{uuid.uuid4().hex}", 404)
    assert await stats(client) == {"hits": 3, "misses": 3, "hitRate": 0.5, "errors": 0, "backend": "redis"}

    r = await client.get("/metrics")
    assert r.status == 200
    text = await r.text()
    assert 'cache_lookups_total{kind="user",result="hit"} 3.0' in text
    assert 'cache_lookups_total{kind="user",result="miss"} 3.0' in text
    assert 'cache_errors_total 0.0' in text


async def test_stats_need_a_token(client):
    r = await client.get("/v1/cache/stats")
    assert r.status == 401


async def test_invalidate_needs_write_scope_and_valid_tags(client):
    r = await client.post("/v1/cache/invalidate", json={"tags": ["user:x"]}, headers=READ)
    assert r.status == 403
    r = await client.post("/v1/cache/invalidate", json={"tags": "user:x"}, headers=WRITE)
    assert r.status == 422
    r = await client.post("/v1/cache/invalidate", json={"tags": [""]}, headers=WRITE)
    assert r.status == 422


async def test_memory_backend_through_the_app(aiohttp_client, migrated_database_url, sql):
    client = await aiohttp_client(create_app(make_settings(migrated_database_url, None)))
    user = await create_user(client, name="Ada")
    await get(client, f"/v1/users/{user['id']}")
    await sql.execute("UPDATE users SET name = 'Sneaky' WHERE id = $1", user["id"])
    assert (await get(client, f"/v1/users/{user['id']}"))["name"] == "Ada"
    assert await stats(client) == {"hits": 1, "misses": 1, "hitRate": 0.5, "errors": 0, "backend": "memory"}
    r = await client.patch(f"/v1/users/{user['id']}", json={"image": "i.png"}, headers=WRITE)
    assert r.status == 200
    assert (await get(client, f"/v1/users/{user['id']}"))["name"] == "Sneaky"


# ---- writes invalidate what they change -------------------------------------------------------------

async def test_patch_user_shows_new_data_by_id_email_and_session(client, sql):
    old_email, new_email = unique_email(), unique_email()
    user = await create_user(client, email=old_email, name="Ada")
    uid = user["id"]
    token = await create_session(client, uid)
    await get(client, f"/v1/users/by-email/{new_email}", 404)  # a cached "not found" for the new e-mail
    assert (await get(client, f"/v1/users/{uid}"))["name"] == "Ada"
    assert (await get(client, f"/v1/users/by-email/{old_email}"))["name"] == "Ada"
    assert (await lookup(client, token))["user"]["name"] == "Ada"

    await sql.execute("UPDATE users SET name = 'Sneaky' WHERE id = $1", uid)
    assert (await get(client, f"/v1/users/{uid}"))["name"] == "Ada"  # served from the cache
    assert (await get(client, f"/v1/users/by-email/{old_email}"))["name"] == "Ada"
    assert (await lookup(client, token))["user"]["name"] == "Ada"

    r = await client.patch(f"/v1/users/{uid}", json={"email": new_email, "name": "Grace"}, headers=WRITE)
    assert r.status == 200, await r.text()
    by_id = await get(client, f"/v1/users/{uid}")
    assert (by_id["email"], by_id["name"]) == (new_email, "Grace")
    await get(client, f"/v1/users/by-email/{old_email}", 404)
    assert (await get(client, f"/v1/users/by-email/{new_email}"))["name"] == "Grace"
    assert (await lookup(client, token))["user"]["email"] == new_email


async def test_delete_user_is_visible_to_the_very_next_reads(client):
    user = await create_user(client)
    uid = user["id"]
    token = await create_session(client, uid)
    await get(client, f"/v1/users/{uid}")
    await get(client, f"/v1/users/by-email/{user['email']}")
    await lookup(client, token)
    await lookup(client, token)  # cached

    r = await client.delete(f"/v1/users/{uid}", headers=WRITE)
    assert r.status == 204
    await get(client, f"/v1/users/{uid}", 404)
    await get(client, f"/v1/users/by-email/{user['email']}", 404)
    await lookup(client, token, 404)
    await get(client, f"/v1/users/{uid}/subscription", 404)


async def test_session_update_and_delete_are_visible_to_the_next_lookup(client, sql):
    user = await create_user(client, name="Ada")
    token = await create_session(client, user["id"], "2030-01-01T00:00:00.000Z")
    assert (await lookup(client, token))["session"]["expires"] == "2030-01-01T00:00:00.000Z"
    await sql.execute("UPDATE users SET name = 'Sneaky' WHERE id = $1", user["id"])
    assert (await lookup(client, token))["user"]["name"] == "Ada"  # cached

    r = await client.post("/v1/sessions/update", headers=WRITE,
                          json={"sessionToken": token, "expires": "2031-02-03T04:05:06.789Z"})
    assert r.status == 200, await r.text()
    found = await lookup(client, token)
    assert found["session"]["expires"] == "2031-02-03T04:05:06.789Z"
    assert found["user"]["name"] == "Sneaky"

    r = await client.post("/v1/sessions/delete", json={"sessionToken": token}, headers=WRITE)
    assert r.status == 200
    await lookup(client, token, 404)


async def test_sign_out_everywhere_is_visible_to_the_next_lookup(client):
    user = await create_user(client)
    tokens = [await create_session(client, user["id"]) for _ in range(3)]
    for token in tokens:
        await lookup(client, token)
    r = await client.delete(f"/v1/users/{user['id']}/sessions", headers=WRITE)
    assert r.status == 200 and (await r.json())["count"] == 3
    for token in tokens:
        await lookup(client, token, 404)


async def test_session_created_after_a_cached_not_found_is_found(client):
    user = await create_user(client)
    token = f"tok-{uuid.uuid4().hex}"
    await lookup(client, token, 404)
    await lookup(client, token, 404)
    r = await client.post("/v1/sessions", headers=WRITE,
                          json={"sessionToken": token, "userId": user["id"], "expires": "2030-01-01T00:00:00Z"})
    assert r.status == 201
    assert (await lookup(client, token))["user"]["id"] == user["id"]


async def test_put_subscription_shows_the_new_one(client, sql):
    uid = (await create_user(client))["id"]
    path = f"/v1/users/{uid}/subscription"
    await get(client, path, 404)
    await get(client, path, 404)  # a cached "not found"
    r = await client.put(path, json={"status": "TRIALING", "stripePriceId": "p1"}, headers=WRITE)
    assert r.status == 201, await r.text()
    assert (await get(client, path))["status"] == "TRIALING"

    await sql.execute("""UPDATE subscriptions SET "stripePriceId" = 'sneaky' WHERE "userId" = $1""", uid)
    assert (await get(client, path))["stripePriceId"] == "p1"  # cached
    r = await client.put(path, json={"status": "ACTIVE", "stripePriceId": "p2"}, headers=WRITE)
    assert r.status == 200, await r.text()
    sub = await get(client, path)
    assert (sub["status"], sub["stripePriceId"]) == ("ACTIVE", "p2")


async def test_natal_data_put_and_delete_are_visible_at_once(client, sql):
    uid = (await create_user(client))["id"]
    path = f"/v1/users/{uid}/natal-data"
    await get(client, path, 404)
    r = await client.put(path, json={"birthDate": "1990-01-02T03:04:05Z", "location": "Paris"}, headers=WRITE)
    assert r.status == 201, await r.text()
    assert (await get(client, path))["location"] == "Paris"

    await sql.execute("""UPDATE natal_data SET location = 'Sneaky' WHERE "userId" = $1""", uid)
    assert (await get(client, path))["location"] == "Paris"  # cached
    r = await client.put(path, json={"birthDate": "1990-01-02T03:04:05Z", "location": "Lyon"}, headers=WRITE)
    assert r.status == 200
    assert (await get(client, path))["location"] == "Lyon"

    r = await client.delete(path, headers=WRITE)
    assert r.status == 204
    await get(client, path, 404)


async def test_charts_post_gives_the_newer_one_and_delete_drops_them(client, sql):
    uid = (await create_user(client))["id"]
    pair = f"/v1/charts?userId={uid}&chartType=tropical"
    await get(client, pair, 404)  # cached "not found" for the pair
    r = await client.post("/v1/charts", headers=WRITE,
                          json={"userId": uid, "chartType": "TROPICAL", "chartData": {"n": 1}, "ttlSeconds": 3600})
    assert r.status == 201, await r.text()
    first = await r.json()
    assert (await get(client, pair))["id"] == first["id"]
    assert (await get(client, f"/v1/charts/{first['id']}"))["chartData"] == {"n": 1}

    await sql.execute("""UPDATE chart_cache SET "chartData" = '{"n": 99}' WHERE id = $1""", first["id"])
    assert (await get(client, pair))["chartData"] == {"n": 1}  # cached
    assert (await get(client, f"/v1/charts/{first['id']}"))["chartData"] == {"n": 1}

    r = await client.post("/v1/charts", headers=WRITE,
                          json={"userId": uid, "chartType": "tropical", "chartData": {"n": 2}, "ttlSeconds": 3600})
    assert r.status == 201
    second = await r.json()
    assert (await get(client, pair))["id"] == second["id"]

    r = await client.delete(f"/v1/charts?userId={uid}&chartType=TROPICAL", headers=WRITE)
    assert r.status == 200 and (await r.json())["count"] == 2
    await get(client, pair, 404)
    await get(client, f"/v1/charts/{first['id']}", 404)
    await get(client, f"/v1/charts/{second['id']}", 404)


async def test_user_created_after_a_cached_not_found_by_email_is_found(client):
    email = unique_email()
    await get(client, f"/v1/users/by-email/{email}", 404)
    await get(client, f"/v1/users/by-email/{email.upper()}", 404)
    hits = (await stats(client))["hits"]
    assert hits == 1  # the second "not found" came from the cache
    user = await create_user(client, email=email)
    assert (await get(client, f"/v1/users/by-email/{email}"))["id"] == user["id"]


async def test_batch_created_users_are_found_after_a_cached_not_found(client):
    email = unique_email()
    await get(client, f"/v1/users/by-email/{email}", 404)
    r = await client.post("/v1/users/batch", json={"users": [{"email": email}]}, headers=WRITE)
    assert r.status == 200, await r.text()
    assert (await get(client, f"/v1/users/by-email/{email}"))["email"] == email


async def test_invalidate_by_user_tag_drops_all_of_that_users_entries(client, sql):
    user = await create_user(client, name="Ada", subscription={"stripePriceId": "p1"},
                             natalData={"birthDate": "1990-01-02T03:04:05Z", "location": "Paris"})
    other = await create_user(client, name="Bob")
    uid = user["id"]
    token = await create_session(client, uid)
    reads = {
        "user": (f"/v1/users/{uid}", lambda b: b["name"]),
        "email": (f"/v1/users/by-email/{user['email']}", lambda b: b["name"]),
        "subscription": (f"/v1/users/{uid}/subscription", lambda b: b["stripePriceId"]),
        "natal": (f"/v1/users/{uid}/natal-data", lambda b: b["location"]),
    }

    async def read_all():
        values = {name: pick(await get(client, path)) for name, (path, pick) in reads.items()}
        values["session"] = (await lookup(client, token))["user"]["name"]
        values["other"] = (await get(client, f"/v1/users/{other['id']}"))["name"]
        return values

    cached = {"user": "Ada", "email": "Ada", "subscription": "p1", "natal": "Paris", "session": "Ada",
              "other": "Bob"}
    assert await read_all() == cached
    await sql.execute("UPDATE users SET name = name || '2' WHERE id = ANY($1)", [uid, other["id"]])
    await sql.execute("""UPDATE subscriptions SET "stripePriceId" = 'p2' WHERE "userId" = $1""", uid)
    await sql.execute("""UPDATE natal_data SET location = 'Lyon' WHERE "userId" = $1""", uid)
    assert await read_all() == cached  # all of it from the cache

    r = await client.post("/v1/cache/invalidate", json={"tags": [f"user:{uid}"]}, headers=WRITE)
    assert r.status == 204
    assert await read_all() == {"user": "Ada2", "email": "Ada2", "subscription": "p2", "natal": "Lyon",
                                "session": "Ada2", "other": "Bob"}  # the other user's entry stays


async def test_entries_never_outlive_the_session_or_chart(client, sql, deps):
    uid = (await create_user(client, name="Ada"))["id"]
    expires = datetime.now(UTC) + timedelta(seconds=2.5)
    token = await create_session(client, uid, iso(expires))
    r = await client.post("/v1/charts", headers=WRITE,
                          json={"userId": uid, "chartType": "HORARY", "chartData": {}, "expiresAt": iso(expires)})
    assert r.status == 201
    chart = await r.json()
    pair = f"/v1/charts?userId={uid}&chartType=HORARY"
    assert (await lookup(client, token))["user"]["name"] == "Ada"
    await get(client, pair)
    await get(client, f"/v1/charts/{chart['id']}")

    # Stored with TTLs no longer than what is left of the session's and the chart's lives.
    client_redis = deps.cache.backend.client
    prefix = deps.settings.cache_prefix + "k:"
    for key in (keys.session_lookup(token), keys.chart_by_pair(uid, "HORARY"), keys.chart_by_id(chart["id"])):
        assert 0 < await client_redis.pttl(prefix + key) <= 2500

    await sql.execute("UPDATE users SET name = 'Later' WHERE id = $1", uid)
    assert (await lookup(client, token))["user"]["name"] == "Ada"  # cached for now
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    assert (await lookup(client, token))["user"]["name"] == "Later"  # the entry went with the session
    await get(client, pair, 404)  # a cached chart would outlive its expiresAt
    await get(client, f"/v1/charts/{chart['id']}", 404)


# ---- no stampede ------------------------------------------------------------------------------------

async def test_a_flood_of_lookups_of_a_missing_id_reaches_the_database_once(client, deps, monkeypatch):
    queries = QueryCounter(monkeypatch, deps)
    missing = uuid.uuid4().hex
    for _ in range(30):
        await get(client, f"/v1/users/{missing}", 404)
    responses = await asyncio.gather(*(client.get(f"/v1/users/{missing}", headers=READ) for _ in range(30)))
    assert [r.status for r in responses] == [404] * 30
    assert queries[Q.get_user_by_id] == 1


async def test_concurrent_cold_reads_of_one_user_load_it_once(client, deps, monkeypatch):
    user = await create_user(client)
    queries = QueryCounter(monkeypatch, deps)
    before = await stats(client)
    responses = await asyncio.gather(*(client.get(f"/v1/users/{user['id']}", headers=READ) for _ in range(100)))
    assert [r.status for r in responses] == [200] * 100
    assert {(await r.json())["id"] for r in responses} == {user["id"]}
    assert queries[Q.get_user_by_id] == 1
    after = await stats(client)
    assert after["misses"] >= before["misses"] + 1
    assert (after["hits"] + after["misses"]) - (before["hits"] + before["misses"]) == 100


async def test_concurrent_cold_session_lookups_query_once(client, deps, monkeypatch):
    user = await create_user(client)
    token = await create_session(client, user["id"])
    queries = QueryCounter(monkeypatch, deps)
    responses = await asyncio.gather(*(
        client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ) for _ in range(50)))
    assert [r.status for r in responses] == [200] * 50
    assert queries[Q.lookup_session] == 1


# ---- Redis going away and coming back ---------------------------------------------------------------

@pytest.fixture
async def own_redis():
    server = RedisServer()
    await server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.resume()
    server.kill()


@pytest.fixture
async def own_client(aiohttp_client, migrated_database_url, own_redis):
    # The Redis tier alone (no near cache): these tests are about what the service does when Redis fails.
    return await aiohttp_client(create_app(make_settings(migrated_database_url, own_redis.url, cache_near_ttl=0)))


async def poll_until_hit(client, path):
    """GET path until the cache answers it again (its hits go up); returns every body read meanwhile."""
    bodies = []
    deadline = time.monotonic() + 10
    hits = (await stats(client))["hits"]
    while time.monotonic() < deadline:
        bodies.append(await get(client, path))
        if (await stats(client))["hits"] > hits:
            return bodies
        await asyncio.sleep(0.05)
    raise AssertionError("the cache did not resume")


async def test_redis_killed_mid_test_answers_from_the_database_then_resumes(own_client, own_redis):
    client = own_client
    user = await create_user(client, name="Ada")
    uid = user["id"]
    token = await create_session(client, uid)
    await get(client, f"/v1/users/{uid}")
    await get(client, f"/v1/users/{uid}")
    await lookup(client, token)
    before = await stats(client)
    assert (before["hits"], before["errors"]) == (1, 0)
    r = await client.get("/readyz")
    assert (await r.json())["redis"] == "ok"

    own_redis.kill()
    assert (await get(client, f"/v1/users/{uid}"))["name"] == "Ada"
    r = await client.patch(f"/v1/users/{uid}", json={"name": "Grace"}, headers=WRITE)
    assert r.status == 200, await r.text()
    assert (await get(client, f"/v1/users/{uid}"))["name"] == "Grace"
    assert (await get(client, f"/v1/users/by-email/{user['email']}"))["name"] == "Grace"
    assert (await lookup(client, token))["user"]["name"] == "Grace"
    r = await client.put(f"/v1/users/{uid}/subscription", json={"status": "ACTIVE"}, headers=WRITE)
    assert r.status == 201, await r.text()
    assert (await get(client, f"/v1/users/{uid}/subscription"))["status"] == "ACTIVE"
    r = await client.put(f"/v1/users/{uid}/natal-data", headers=WRITE,
                         json={"birthDate": "1990-01-02T03:04:05Z", "location": "Paris"})
    assert r.status == 201, await r.text()
    assert (await create_user(client))["id"]
    during = await stats(client)
    assert during["errors"] > 0
    assert during["backend"] == "redis"
    r = await client.get("/readyz")
    assert r.status == 200
    assert await r.json() == {"status": "ok", "database": "ok", "redis": "degraded"}
    r = await client.get("/metrics")
    assert f'cache_errors_total {float(during["errors"])}' in await r.text()

    await own_redis.start()  # same port, empty
    bodies = await poll_until_hit(client, f"/v1/users/{uid}")
    assert {b["name"] for b in bodies} == {"Grace"}
    r = await client.get("/readyz")
    assert (await r.json())["redis"] == "ok"
    # Fills go to Redis again.
    client_redis = aioredis.Redis.from_url(own_redis.url)
    try:
        key = client.server.app[DEPS].settings.cache_prefix + "k:" + keys.user_by_id(uid)
        assert b'"Grace"' in await client_redis.get(key)
    finally:
        await client_redis.aclose()


async def test_invalidation_made_while_redis_was_unreachable_is_applied_when_it_returns(own_client, own_redis):
    client = own_client
    deps = client.server.app[DEPS]
    deps.cache.PAUSE_AFTER_ERROR = 3.0  # room for the write below to fall inside the pause
    user = await create_user(client, name="Ada")
    uid = user["id"]
    await get(client, f"/v1/users/{uid}")
    await get(client, f"/v1/users/{uid}")
    assert (await stats(client))["hits"] == 1
    entry = deps.settings.cache_prefix + "k:" + keys.user_by_id(uid)

    own_redis.pause()  # unreachable, but its data survives
    try:
        assert (await get(client, f"/v1/users/{uid}"))["name"] == "Ada"  # times out: cache paused
        errors = (await stats(client))["errors"]
        assert errors >= 1
        r = await client.patch(f"/v1/users/{uid}", json={"name": "Grace"}, headers=WRITE)
        assert r.status == 200, await r.text()  # its invalidation could not be sent
        assert (await get(client, f"/v1/users/{uid}"))["name"] == "Grace"  # from the database
        r = await client.get("/readyz")
        assert r.status == 200 and (await r.json())["redis"] == "degraded"
    finally:
        own_redis.resume()

    client_redis = aioredis.Redis.from_url(own_redis.url)
    try:
        assert b'"Ada"' in await client_redis.get(entry)  # the stale entry is still in Redis...
        bodies = await poll_until_hit(client, f"/v1/users/{uid}")
        assert {b["name"] for b in bodies} == {"Grace"}  # ...but is never served: invalidated first
        assert b'"Grace"' in await client_redis.get(entry)
    finally:
        await client_redis.aclose()
    assert (await stats(client))["errors"] > errors


# ---- the near cache (in-process copies of Redis entries) ------------------------------------------------

async def two_instances(aiohttp_client, database_url, redis_url):
    # A near-cache lease longer than any stall of this busy test machine: these tests are about what
    # invalidation drops, and a lapsed lease (copies not served for a moment) would hide a near copy.
    settings = make_settings(database_url, redis_url, cache_near_lease=5.0)
    prefix = settings.cache_prefix  # both instances share one Redis namespace, as in production
    a = await aiohttp_client(create_app(settings))
    b = await aiohttp_client(create_app(make_settings(database_url, redis_url, cache_prefix=prefix,
                                                      cache_near_lease=5.0)))
    for client in (a, b):
        for _ in range(100):
            if client.server.app[DEPS].cache.near.ready:
                break
            await asyncio.sleep(0.02)
        assert client.server.app[DEPS].cache.near.ready
    return a, b


async def test_near_cache_serves_hot_reads_in_process_and_other_instances_invalidate_it(
        aiohttp_client, migrated_database_url, redis_url, sql):
    a, b = await two_instances(aiohttp_client, migrated_database_url, redis_url)
    user = await create_user(a, name="Ada")
    path = f"/v1/users/{user['id']}"
    await get(b, path)  # B loads it: Redis and B's near cache
    near_b = b.server.app[DEPS].cache.near
    assert near_b.get(keys.user_by_id(user["id"])) is not None
    # Served from B's process memory: even the Redis entry going away does not matter to it.
    await sql.execute("UPDATE users SET name = 'Sneaky' WHERE id = $1", user["id"])
    assert (await get(b, path))["name"] == "Ada"
    # A write on A reaches B's near cache through Redis: B's next reads show it.
    r = await a.patch(path, json={"name": "Grace"}, headers=WRITE)
    assert r.status == 200
    for _ in range(100):
        if near_b.get(keys.user_by_id(user["id"])) is None:
            break
        await asyncio.sleep(0.01)
    assert (await get(b, path))["name"] == "Grace"
    # A tag invalidation (deleting the user) reaches it too.
    await get(b, path)
    r = await a.delete(path, headers=WRITE)
    assert r.status == 204
    for _ in range(100):
        if near_b.get(keys.user_by_id(user["id"])) is None:
            break
        await asyncio.sleep(0.01)
    await get(b, path, status=404)


async def test_near_cache_is_dropped_while_redis_is_gone(aiohttp_client, migrated_database_url, own_redis, sql):
    client = await aiohttp_client(create_app(make_settings(migrated_database_url, own_redis.url)))
    near = client.server.app[DEPS].cache.near
    for _ in range(100):
        if near.ready:
            break
        await asyncio.sleep(0.02)
    user = await create_user(client, name="Ada")
    path = f"/v1/users/{user['id']}"
    await get(client, path)
    assert near.get(keys.user_by_id(user["id"])) is not None
    own_redis.kill()
    for _ in range(200):  # the subscription breaks: no invalidation could reach us, so no copy is used
        if not near.ready:
            break
        await asyncio.sleep(0.01)
    assert not near.ready and near.get(keys.user_by_id(user["id"])) is None
    await sql.execute("UPDATE users SET name = 'Changed' WHERE id = $1", user["id"])
    assert (await get(client, path))["name"] == "Changed"  # from the database
