"""The chart cache (API.md § Chart cache): create, read unexpired, invalidate, sweep expired rows."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from service import migrate
from service.app import create_app
from service.data import charts
from service.deps import DEPS
from tests.conftest import READ, WRITE, make_settings
from tests.databases import create_database, drop_database

CHART_DATA = {"planets": [{"name": "Sun", "sign": "Cancer", "degree": 21.5}], "houses": list(range(12))}


def new_user_id():
    # chart_cache.userId has no foreign key: any id names a (possibly future) user.
    return "c" + uuid.uuid4().hex[:24]


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def post_chart(client, **fields):
    body = {"chartType": "TROPICAL", "chartData": CHART_DATA, "ttlSeconds": 3600, **fields}
    body = {k: v for k, v in body.items() if v is not None}
    r = await client.post("/v1/charts", json=body, headers=WRITE)
    assert r.status == 201, await r.text()
    return await r.json()


async def insert_expired(db, user_id, chart_type="TROPICAL", ago=timedelta(hours=1)) -> str:
    chart_id = "c" + uuid.uuid4().hex[:24]
    await db.execute(
        'INSERT INTO chart_cache (id, "userId", "chartType", "chartData", "expiresAt") '
        "VALUES ($1, $2, $3, $4, (now() AT TIME ZONE 'UTC') - $5::interval)",
        chart_id, user_id, chart_type, {"expired": True}, ago)
    return chart_id


async def insert_live(db, user_id, chart_type="TROPICAL") -> str:
    chart_id = "c" + uuid.uuid4().hex[:24]
    await db.execute(
        'INSERT INTO chart_cache (id, "userId", "chartType", "chartData", "expiresAt") '
        "VALUES ($1, $2, $3, $4, (now() AT TIME ZONE 'UTC') + interval '1 hour')",
        chart_id, user_id, chart_type, {"live": True})
    return chart_id


# ---- create ---------------------------------------------------------------------------------------------


async def test_create_with_ttl_seconds(client):
    user_id = new_user_id()
    before = datetime.now(UTC)
    chart = await post_chart(client, userId=user_id, ttlSeconds=600, interpretation="A watery Sun.")
    after = datetime.now(UTC)
    assert chart["userId"] == user_id
    assert chart["chartType"] == "TROPICAL"
    assert chart["chartData"] == CHART_DATA
    assert chart["interpretation"] == "A watery Sun."
    expires = parse(chart["expiresAt"])
    assert before + timedelta(seconds=600) - timedelta(milliseconds=1) <= expires <= after + timedelta(seconds=600)
    assert chart["createdAt"].endswith("Z") and len(chart["createdAt"]) == 24


async def test_create_with_expires_at(client):
    expires = datetime.now(UTC).replace(microsecond=123000) + timedelta(days=2)
    chart = await post_chart(client, userId=new_user_id(), ttlSeconds=None,
                             expiresAt=expires.astimezone(timezone(timedelta(hours=2))).isoformat())
    assert chart["expiresAt"] == iso(expires)


async def test_create_without_user(client):
    chart = await post_chart(client, chartType="HORARY")
    assert chart["userId"] is None
    r = await client.get(f"/v1/charts/{chart['id']}", headers=READ)
    assert r.status == 200


@pytest.mark.parametrize("fields,field", [
    ({"ttlSeconds": None}, "ttlSeconds"),  # neither
    ({"expiresAt": "2099-01-01T00:00:00Z"}, "ttlSeconds"),  # both
    ({"ttlSeconds": None, "expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"),  # in the past
    ({"ttlSeconds": 0}, "ttlSeconds"),
    ({"ttlSeconds": -5}, "ttlSeconds"),
    ({"ttlSeconds": None, "expiresAt": "2099-01-01T00:00:00"}, "expiresAt"),  # no time zone
    ({"chartType": "SIDEREAL"}, "chartType"),
    ({"chartType": ""}, "chartType"),
    ({"chartData": None, "ttlSeconds": 60}, "chartData"),  # missing
])
async def test_create_validation(client, fields, field):
    body = {"chartType": "TROPICAL", "chartData": CHART_DATA, "ttlSeconds": 3600, "userId": new_user_id(), **fields}
    body = {k: v for k, v in body.items() if v is not None}
    r = await client.post("/v1/charts", json=body, headers=WRITE)
    assert r.status == 422, await r.text()
    problem = await r.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["field"] == field
    r = await client.get("/v1/charts", params={"userId": body["userId"], "chartType": "TROPICAL"}, headers=READ)
    assert r.status == 404  # nothing stored


@pytest.mark.parametrize("spelling", ["tropical", "Tropical", "TROPICAL", " tRoPiCaL "])
async def test_chart_type_is_case_insensitive(client, spelling):
    user_id = new_user_id()
    chart = await post_chart(client, userId=user_id, chartType=spelling)
    assert chart["chartType"] == "TROPICAL"
    for query_spelling in ("tropical", "TROPICAL", spelling):
        r = await client.get("/v1/charts", params={"userId": user_id, "chartType": query_spelling}, headers=READ)
        assert r.status == 200, await r.text()
        assert (await r.json())["id"] == chart["id"]


async def test_solar_return_in_lower_case(client):
    chart = await post_chart(client, userId=new_user_id(), chartType="solar_return")
    assert chart["chartType"] == "SOLAR_RETURN"


# ---- read ---------------------------------------------------------------------------------------------


async def test_get_by_id(client):
    chart = await post_chart(client, userId=new_user_id())
    r = await client.get(f"/v1/charts/{chart['id']}", headers=READ)
    assert r.status == 200
    assert await r.json() == chart
    r = await client.get(f"/v1/charts/{new_user_id()}", headers=READ)
    assert r.status == 404
    assert (await r.json())["code"] == "not_found"


async def test_get_pair_returns_the_newest(client):
    user_id = new_user_id()
    older = await post_chart(client, userId=user_id, chartData={"n": 1})
    r = await client.get("/v1/charts", params={"userId": user_id, "chartType": "TROPICAL"}, headers=READ)
    assert (await r.json())["id"] == older["id"]  # and now cached
    newer = await post_chart(client, userId=user_id, chartData={"n": 2}, ttlSeconds=60)
    other_type = await post_chart(client, userId=user_id, chartType="DRACONIC", chartData={"n": 3})
    r = await client.get("/v1/charts", params={"userId": user_id, "chartType": "TROPICAL"}, headers=READ)
    assert r.status == 200
    assert await r.json() == newer  # the POST invalidated the cached answer
    r = await client.get("/v1/charts", params={"userId": user_id, "chartType": "draconic"}, headers=READ)
    assert (await r.json())["id"] == other_type["id"]
    r = await client.get("/v1/charts", params={"userId": user_id, "chartType": "HORARY"}, headers=READ)
    assert r.status == 404
    r = await client.get("/v1/charts", params={"userId": new_user_id(), "chartType": "TROPICAL"}, headers=READ)
    assert r.status == 404


async def test_get_pair_with_unknown_chart_type_is_422(client):
    r = await client.get("/v1/charts", params={"userId": new_user_id(), "chartType": "sidereal"}, headers=READ)
    assert r.status == 422
    assert (await r.json())["errors"][0]["field"] == "chartType"


async def test_an_expired_entry_is_never_returned(client, deps):
    user_id = new_user_id()
    live = await post_chart(client, userId=user_id)
    expired = await insert_expired(deps.db, user_id)  # created after the live one: the newest, but expired
    expired_other = await insert_expired(deps.db, user_id, "HORARY", ago=timedelta(seconds=1))
    r = await client.get("/v1/charts", params={"userId": user_id, "chartType": "TROPICAL"}, headers=READ)
    assert r.status == 200
    assert (await r.json())["id"] == live["id"]
    for chart_id in (expired, expired_other):
        r = await client.get(f"/v1/charts/{chart_id}", headers=READ)
        assert r.status == 404
    r = await client.get("/v1/charts", params={"userId": user_id, "chartType": "HORARY"}, headers=READ)
    assert r.status == 404


# ---- invalidate ---------------------------------------------------------------------------------------


async def test_delete_pair_then_all_of_a_user(client):
    user_id, bystander = new_user_id(), new_user_id()
    tropical = [await post_chart(client, userId=user_id) for _ in range(2)]
    draconic = await post_chart(client, userId=user_id, chartType="DRACONIC")
    horary = await post_chart(client, userId=user_id, chartType="HORARY")
    kept = await post_chart(client, userId=bystander)
    # Cache the reads first, so the deletes must invalidate them.
    for chart in (*tropical, draconic, horary):
        assert (await client.get(f"/v1/charts/{chart['id']}", headers=READ)).status == 200
    assert (await client.get("/v1/charts", params={"userId": user_id, "chartType": "TROPICAL"},
                             headers=READ)).status == 200

    r = await client.delete("/v1/charts", params={"userId": user_id, "chartType": "tropical"}, headers=WRITE)
    assert r.status == 200
    assert await r.json() == {"count": 2}
    r = await client.get("/v1/charts", params={"userId": user_id, "chartType": "TROPICAL"}, headers=READ)
    assert r.status == 404
    for chart in tropical:
        assert (await client.get(f"/v1/charts/{chart['id']}", headers=READ)).status == 404
    assert (await client.get(f"/v1/charts/{draconic['id']}", headers=READ)).status == 200

    r = await client.delete("/v1/charts", params={"userId": user_id}, headers=WRITE)
    assert await r.json() == {"count": 2}
    for chart in (draconic, horary):
        assert (await client.get(f"/v1/charts/{chart['id']}", headers=READ)).status == 404
    r = await client.delete("/v1/charts", params={"userId": user_id}, headers=WRITE)
    assert await r.json() == {"count": 0}
    assert (await client.get(f"/v1/charts/{kept['id']}", headers=READ)).status == 200


async def test_delete_needs_a_user_and_a_known_type(client):
    r = await client.delete("/v1/charts", headers=WRITE)
    assert r.status == 400
    assert (await r.json())["errors"][0]["field"] == "userId"
    r = await client.delete("/v1/charts", params={"userId": new_user_id(), "chartType": "nope"}, headers=WRITE)
    assert r.status == 422
    r = await client.delete("/v1/charts", params={"userId": new_user_id()}, headers=READ)
    assert r.status == 403


# ---- sweep (on a database of its own, so counts are exact) ---------------------------------------------


@pytest.fixture
async def own_client(aiohttp_client, redis_url):
    url = await create_database()
    try:
        await asyncio.to_thread(migrate.apply, url)
        client = await aiohttp_client(create_app(make_settings(url, redis_url, sweep_batch_size=4)))
        yield client
        await client.close()  # the app's pool first, then its database
    finally:
        await drop_database(url)


async def count_rows(db, where="TRUE"):
    return await db.fetchval(f"SELECT count(*) FROM chart_cache WHERE {where}")


async def test_sweep_deletes_only_expired_rows_and_reports_the_count(own_client):
    db = own_client.server.app[DEPS].db
    user_id = new_user_id()
    live = [await insert_live(db, user_id) for _ in range(3)]
    live.append((await post_chart(own_client, userId=user_id, chartType="HORARY"))["id"])
    for i in range(11):  # three batches of 4 (the last one short)
        await insert_expired(db, user_id if i % 2 else None, "TROPICAL" if i % 3 else "DRACONIC",
                             ago=timedelta(minutes=i + 1))
    assert await count_rows(db) == 15

    r = await own_client.post("/v1/charts/sweep", headers=WRITE)
    assert r.status == 200
    assert await r.json() == {"count": 11}
    assert await count_rows(db) == 4
    assert sorted(row["id"] for row in await db.fetch("SELECT id FROM chart_cache")) == sorted(live)
    for chart_id in live:
        assert (await own_client.get(f"/v1/charts/{chart_id}", headers=READ)).status == 200

    r = await own_client.post("/v1/charts/sweep", headers=WRITE)
    assert await r.json() == {"count": 0}
    assert await count_rows(db) == 4

    r = await own_client.post("/v1/charts/sweep", headers=READ)
    assert r.status == 403


async def test_sweep_in_batches_deletes_everything_expired(own_client):
    deps = own_client.server.app[DEPS]
    for i in range(10):
        await insert_expired(deps.db, new_user_id(), ago=timedelta(seconds=i + 1))
    await insert_live(deps.db, new_user_id())

    result = await charts.sweep_expired(deps, batch_size=3)
    assert (result.count, result.batches) == (10, 4)  # 3 + 3 + 3 + 1
    assert await count_rows(deps.db) == 1
    assert await count_rows(deps.db, "\"expiresAt\" <= (now() AT TIME ZONE 'UTC')") == 0

    # Exactly a multiple of the batch size: one more (empty) batch finds nothing left.
    for _ in range(6):
        await insert_expired(deps.db, new_user_id())
    result = await charts.sweep_expired(deps, batch_size=3)
    assert (result.count, result.batches) == (6, 3)
    assert await count_rows(deps.db) == 1


async def test_the_background_task_sweeps_on_its_interval(aiohttp_client, migrated_database_url, redis_url):
    settings = make_settings(migrated_database_url, redis_url, sweep_interval_seconds=0.2)
    client = await aiohttp_client(create_app(settings))
    deps = client.server.app[DEPS]
    chart_id = f"bg-{uuid.uuid4().hex}"
    await deps.db.execute(
        'INSERT INTO chart_cache (id, "chartType", "chartData", "expiresAt") '
        "VALUES ($1, 'HORARY', '{}', (now() AT TIME ZONE 'UTC') - interval '1 minute')", chart_id)
    for _ in range(100):
        if not await deps.db.fetchval("SELECT count(*) FROM chart_cache WHERE id = $1", chart_id):
            break
        await asyncio.sleep(0.05)
    assert await deps.db.fetchval("SELECT count(*) FROM chart_cache WHERE id = $1", chart_id) == 0
