"""The list routes (API.md § Lists) against databases of their own, so every answer's exact rows are known.

`fixed_db` holds a handful of hand-made rows (operators, errors, select, sort); `paging_db` holds 25
users (page/limit/count); the keyset tests that insert between pages make a database per test.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from yarl import URL

from service import migrate
from service.app import create_app
from tests.conftest import READ, make_settings
from tests.databases import create_database, drop_database


def T(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 1, day, hour)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds") + "Z"


# ---- the known rows -----------------------------------------------------------------------------

# id, email, emailVerified, name, image, role, createdAt
USERS = [
    ("u1", "ann@alpha.test", T(1), "Ann", "https://img.test/1", "ADMIN", T(1)),
    ("u2", "bob@alpha.test", None, "Bob", None, "USER", T(2)),
    ("u3", "cat@beta.test", T(3), None, None, "USER", T(3)),
    ("u4", "dan@beta.test", None, "Dan", None, "ADMIN", T(4)),
    ("u5", "eve@gamma.test", T(5), "Eve", None, "USER", T(5)),
    ("u6", "fay@gamma.test", None, "Fay", None, "USER", T(6)),
]
# id, userId, status, cancelAtPeriodEnd, currentPeriodEnd, createdAt
SUBSCRIPTIONS = [
    ("s1", "u1", "ACTIVE", False, T(10), T(1)),
    ("s2", "u2", "CANCELLED", True, T(11), T(2)),
    ("s3", "u3", "ACTIVE", True, None, T(3)),
    ("s4", "u4", "PAST_DUE", False, T(13), T(4)),
    ("s5", "u5", "TRIALING", False, T(14), T(5)),
]
# id, userId, provider, providerAccountId, expires_at
ACCOUNTS = [
    ("a1", "u1", "google", "g-1", 100),
    ("a2", "u1", "github", "gh-1", 200),
    ("a3", "u1", "discord", "d-1", 300),
    ("a4", "u1", "apple", "ap-1", None),
    ("a5", "u2", "google", "g-2", 150),  # another user's: never in u1's list
]
FAR, NEAR, PAST = datetime(2100, 1, 1), datetime(2099, 6, 1), datetime(2000, 1, 1)
# id, userId, chartType, createdAt, expiresAt
CHARTS = [
    ("c1", "u1", "TROPICAL", T(1), FAR),
    ("c2", "u1", "DRACONIC", T(2), FAR),
    ("c3", "u2", "TROPICAL", T(3), NEAR),
    ("c4", None, "HORARY", T(4), FAR),
    ("c5", "u1", "TROPICAL", T(5), PAST),  # expired: never listed
]


async def insert_users(conn, rows):
    await conn.executemany(
        'INSERT INTO users (id, email, "emailVerified", name, image, role, "createdAt", "updatedAt") '
        'VALUES ($1, $2, $3, $4, $5, $6::"Role", $7, $7)', rows)


async def _seed_fixed(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await insert_users(conn, USERS)
        await conn.executemany(
            'INSERT INTO subscriptions (id, "userId", status, "cancelAtPeriodEnd", "currentPeriodEnd", '
            '"createdAt", "updatedAt") VALUES ($1, $2, $3::"SubscriptionStatus", $4, $5, $6, $6)', SUBSCRIPTIONS)
        await conn.executemany(
            'INSERT INTO accounts (id, "userId", type, provider, "providerAccountId", expires_at) '
            "VALUES ($1, $2, 'oauth', $3, $4, $5)", ACCOUNTS)
        await conn.executemany(
            'INSERT INTO chart_cache (id, "userId", "chartType", "chartData", "createdAt", "expiresAt") '
            "VALUES ($1, $2, $3::\"ChartType\", '{\"k\": 1}'::jsonb, $4, $5)", CHARTS)
    finally:
        await conn.close()


def _database(seed):
    url = asyncio.run(create_database())
    try:
        migrate.apply(url)
        asyncio.run(seed(url))
    except BaseException:
        asyncio.run(drop_database(url))
        raise
    return url


@pytest.fixture(scope="module")
def fixed_db():
    url = _database(_seed_fixed)
    yield url
    asyncio.run(drop_database(url))


PAGING_USERS = [(f"p{i:02d}", f"p{i:02d}@paging.test", None, f"P{i:02d}", None, "USER", T(1) + timedelta(hours=i))
                for i in range(25)]


async def _seed_paging(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await insert_users(conn, PAGING_USERS)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def paging_db():
    url = _database(_seed_paging)
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture
async def client(aiohttp_client, fixed_db, redis_url):
    return await aiohttp_client(create_app(make_settings(fixed_db, redis_url, cache_enabled=False)))


@pytest.fixture
async def paging_client(aiohttp_client, paging_db, redis_url):
    return await aiohttp_client(create_app(make_settings(paging_db, redis_url, cache_enabled=False)))


async def get_page(client, path: str, **query) -> dict:
    r = await client.get(path, params=query, headers=READ)
    assert r.status == 200, await r.text()
    return await r.json()


async def ids(client, path: str, **query) -> list[str]:
    return [row["id"] for row in (await get_page(client, path, limit="100", **query))["data"]]


async def problem(client, path: str, params) -> dict:
    r = await client.get(path, params=params, headers=READ)
    assert r.status == 400, await r.text()
    assert r.content_type == "application/problem+json"
    body = await r.json()
    assert body["code"] == "bad_request"
    return body


# ---- 1. every operator on every field type ---------------------------------------------------------

U_ALL = {u[0] for u in USERS}
S_ALL = {s[0] for s in SUBSCRIPTIONS}
A_ALL = {"a1", "a2", "a3", "a4"}
C_ALL = {"c1", "c2", "c3", "c4"}
LISTS = {  # list: (path, every row it lists, {field: rows where that field is NULL})
    "users": ("/v1/users", U_ALL, {"name": {"u3"}, "emailVerified": {"u2", "u4", "u6"}}),
    "subscriptions": ("/v1/subscriptions", S_ALL, {"currentPeriodEnd": {"s3"}}),
    "accounts": ("/v1/users/u1/accounts", A_ALL, {"expires_at": {"a4"}}),
    "charts": ("/v1/charts", C_ALL, {"userId": {"c4"}}),
}

CASES = [
    # text, not null
    ("users", "email", "eq.bob@alpha.test", {"u2"}),
    ("users", "email", "neq.bob@alpha.test", U_ALL - {"u2"}),
    ("users", "email", "gt.dan@beta.test", {"u5", "u6"}),
    ("users", "email", "gte.dan@beta.test", {"u4", "u5", "u6"}),
    ("users", "email", "lt.bob@alpha.test", {"u1"}),
    ("users", "email", "lte.bob@alpha.test", {"u1", "u2"}),
    ("users", "email", "like.*@alpha.test", {"u1", "u2"}),
    ("users", "email", "like.*@ALPHA.test", set()),
    ("users", "email", "ilike.*@ALPHA.TEST", {"u1", "u2"}),
    ("users", "email", "in.(ann@alpha.test,fay@gamma.test,nobody@x.test)", {"u1", "u6"}),
    ("users", "email", "is.null", set()),
    # text, nullable
    ("users", "name", "eq.Bob", {"u2"}),
    ("users", "name", "neq.Bob", {"u1", "u4", "u5", "u6"}),
    ("users", "name", "gt.Dan", {"u5", "u6"}),
    ("users", "name", "gte.Dan", {"u4", "u5", "u6"}),
    ("users", "name", "lt.Bob", {"u1"}),
    ("users", "name", "lte.Bob", {"u1", "u2"}),
    ("users", "name", "like.*a*", {"u4", "u6"}),
    ("users", "name", "ilike.*a*", {"u1", "u4", "u6"}),
    ("users", "name", "in.(Eve,Fay)", {"u5", "u6"}),
    ("users", "name", "is.null", {"u3"}),
    ("subscriptions", "userId", "eq.u3", {"s3"}),
    ("accounts", "provider", "eq.google", {"a1"}),  # u2's google account is not u1's
    ("accounts", "provider", "like.g*", {"a1", "a2"}),
    ("charts", "userId", "eq.u1", {"c1", "c2"}),  # c5 is u1's too, but expired
    ("charts", "userId", "is.null", {"c4"}),
    # time, nullable
    ("users", "emailVerified", "eq.2026-01-03T10:00:00.000Z", {"u3"}),
    ("users", "emailVerified", "eq.2026-01-03T12:00:00+02:00", {"u3"}),
    ("users", "emailVerified", "neq.2026-01-03T10:00:00Z", {"u1", "u5"}),
    ("users", "emailVerified", "gt.2026-01-03T10:00:00Z", {"u5"}),
    ("users", "emailVerified", "gte.2026-01-03T10:00:00Z", {"u3", "u5"}),
    ("users", "emailVerified", "lt.2026-01-03T10:00:00Z", {"u1"}),
    ("users", "emailVerified", "lte.2026-01-03T10:00:00Z", {"u1", "u3"}),
    ("users", "emailVerified", "in.(2026-01-01T10:00:00Z,2026-01-05T10:00:00.000Z)", {"u1", "u5"}),
    ("users", "emailVerified", "is.null", {"u2", "u4", "u6"}),
    # time, not null
    ("users", "createdAt", "gt.2026-01-04T10:00:00Z", {"u5", "u6"}),
    ("users", "createdAt", "lte.2026-01-02", {"u1"}),  # a date is its midnight (UTC)
    ("subscriptions", "currentPeriodEnd", "lt.2026-01-12T00:00:00Z", {"s1", "s2"}),
    ("charts", "expiresAt", "lt.2099-12-31T00:00:00Z", {"c3"}),
    # enum (any case; ordered as declared: USER < ADMIN, INACTIVE < ACTIVE < CANCELLED < PAST_DUE < TRIALING)
    ("users", "role", "eq.admin", {"u1", "u4"}),
    ("users", "role", "eq.Admin", {"u1", "u4"}),
    ("users", "role", "neq.ADMIN", {"u2", "u3", "u5", "u6"}),
    ("users", "role", "gt.user", {"u1", "u4"}),
    ("users", "role", "gte.user", U_ALL),
    ("users", "role", "lt.admin", {"u2", "u3", "u5", "u6"}),
    ("users", "role", "lte.admin", U_ALL),
    ("users", "role", "in.(admin)", {"u1", "u4"}),
    ("users", "role", "in.(User,ADMIN)", U_ALL),
    ("users", "role", "is.null", set()),
    ("subscriptions", "status", "eq.active", {"s1", "s3"}),
    ("subscriptions", "status", "neq.ACTIVE", {"s2", "s4", "s5"}),
    ("subscriptions", "status", "gt.cancelled", {"s4", "s5"}),
    ("subscriptions", "status", "gte.Cancelled", {"s2", "s4", "s5"}),
    ("subscriptions", "status", "lt.cancelled", {"s1", "s3"}),
    ("subscriptions", "status", "lte.cancelled", {"s1", "s2", "s3"}),
    ("subscriptions", "status", "in.(past_due,trialing,inactive)", {"s4", "s5"}),
    ("charts", "chartType", "eq.tropical", {"c1", "c3"}),
    ("charts", "chartType", "in.(draconic,Horary)", {"c2", "c4"}),
    # bool
    ("subscriptions", "cancelAtPeriodEnd", "eq.true", {"s2", "s3"}),
    ("subscriptions", "cancelAtPeriodEnd", "eq.FALSE", {"s1", "s4", "s5"}),
    ("subscriptions", "cancelAtPeriodEnd", "neq.true", {"s1", "s4", "s5"}),
    ("subscriptions", "cancelAtPeriodEnd", "gt.false", {"s2", "s3"}),
    ("subscriptions", "cancelAtPeriodEnd", "gte.false", S_ALL),
    ("subscriptions", "cancelAtPeriodEnd", "lt.true", {"s1", "s4", "s5"}),
    ("subscriptions", "cancelAtPeriodEnd", "lte.true", S_ALL),
    ("subscriptions", "cancelAtPeriodEnd", "in.(true)", {"s2", "s3"}),
    ("subscriptions", "cancelAtPeriodEnd", "is.true", {"s2", "s3"}),
    ("subscriptions", "cancelAtPeriodEnd", "is.false", {"s1", "s4", "s5"}),
    ("subscriptions", "cancelAtPeriodEnd", "is.null", set()),
    # int, nullable
    ("accounts", "expires_at", "eq.200", {"a2"}),
    ("accounts", "expires_at", "neq.200", {"a1", "a3"}),
    ("accounts", "expires_at", "gt.100", {"a2", "a3"}),
    ("accounts", "expires_at", "gte.200", {"a2", "a3"}),
    ("accounts", "expires_at", "lt.200", {"a1"}),
    ("accounts", "expires_at", "lte.200", {"a1", "a2"}),
    ("accounts", "expires_at", "in.(100,300,150)", {"a1", "a3"}),
    ("accounts", "expires_at", "is.null", {"a4"}),
]


def negated(list_name: str, field: str, expression: str, expected: set[str]) -> set[str]:
    """not.<expression>: SQL's NOT (...) -- a NULL field fails both `x op v` and `NOT (x op v)`,
    while `x IS ...` is never NULL, so not.is. is the plain complement."""
    _, every, nulls = LISTS[list_name]
    if expression.startswith("is."):
        return every - expected
    return every - nulls.get(field, set()) - expected


@pytest.mark.parametrize("negate", [False, True], ids=["", "not"])
@pytest.mark.parametrize("list_name, field, expression, expected", CASES,
                         ids=[f"{c[0]}.{c[1]}={c[2]}" for c in CASES])
async def test_operator(client, list_name, field, expression, expected, negate):
    path = LISTS[list_name][0]
    if negate:
        expression, expected = "not." + expression, negated(list_name, field, expression, expected)
    extra = {"limit": "100"}  # /v1/charts with only userId is a list (not the userId+chartType lookup)
    rows = await get_page(client, path, **{field: expression}, **extra)
    assert {row["id"] for row in rows["data"]} == expected
    assert rows["pagination"]["total"] == len(expected)


async def test_filters_on_one_field_and_on_several_are_anded(client):
    assert set(await ids(client, "/v1/users", role="eq.user", name="not.is.null")) == {"u2", "u5", "u6"}
    r = await client.get("/v1/users?createdAt=gte.2026-01-02&createdAt=lt.2026-01-05&limit=100", headers=READ)
    assert {row["id"] for row in (await r.json())["data"]} == {"u2", "u3", "u4"}


async def test_charts_list_mode_versus_the_pair_lookup(client):
    # exactly userId + chartType: the single newest entry, not a page
    r = await client.get("/v1/charts", params={"userId": "u1", "chartType": "tropical"}, headers=READ)
    assert r.status == 200
    assert (await r.json())["id"] == "c1"
    # anything more (or less) is a list
    page = await get_page(client, "/v1/charts", userId="eq.u1", chartType="eq.tropical", limit="5")
    assert [row["id"] for row in page["data"]] == ["c1"]
    assert await ids(client, "/v1/charts") == ["c4", "c3", "c2", "c1"]  # newest first; c5 expired


async def test_accounts_list_is_the_users_and_404_for_an_unknown_user(client):
    assert await ids(client, "/v1/users/u1/accounts") == ["a4", "a3", "a2", "a1"]  # provider, providerAccountId
    assert await ids(client, "/v1/users/u2/accounts") == ["a5"]
    r = await client.get("/v1/users/nobody/accounts", headers=READ)
    assert r.status == 404


async def test_lists_need_a_token(client):
    for path in ("/v1/users", "/v1/subscriptions", "/v1/users/u1/accounts", "/v1/charts?limit=1"):
        r = await client.get(path)
        assert r.status == 401, path


# ---- 2. page, limit, sort, select, count ----------------------------------------------------------

PAGING_NEWEST_FIRST = [u[0] for u in reversed(PAGING_USERS)]


async def test_defaults_page_1_limit_10_newest_first(paging_client):
    body = await get_page(paging_client, "/v1/users")
    assert [row["id"] for row in body["data"]] == PAGING_NEWEST_FIRST[:10]
    pagination = body["pagination"]
    assert isinstance(pagination.pop("nextCursor"), str)
    assert pagination == {"page": 1, "limit": 10, "total": 25, "totalPages": 3, "hasNext": True,
                          "hasPrev": False, "totalIsEstimate": False}


async def test_pages(paging_client):
    body = await get_page(paging_client, "/v1/users", page="3")
    assert [row["id"] for row in body["data"]] == PAGING_NEWEST_FIRST[20:]
    assert body["pagination"] == {"page": 3, "limit": 10, "total": 25, "totalPages": 3, "hasNext": False,
                                  "hasPrev": True, "nextCursor": None, "totalIsEstimate": False}
    body = await get_page(paging_client, "/v1/users", page="4", limit="7")
    assert [row["id"] for row in body["data"]] == PAGING_NEWEST_FIRST[21:]
    assert body["pagination"]["totalPages"] == 4 and not body["pagination"]["hasNext"]
    body = await get_page(paging_client, "/v1/users", page="9")
    assert body["data"] == [] and body["pagination"]["total"] == 25 and body["pagination"]["hasPrev"]
    body = await get_page(paging_client, "/v1/users", limit="5", page="5")
    assert body["pagination"]["hasNext"] is False and len(body["data"]) == 5


async def test_limit_100_is_allowed(paging_client):
    body = await get_page(paging_client, "/v1/users", limit="100")
    assert len(body["data"]) == 25
    assert body["pagination"]["limit"] == 100 and body["pagination"]["totalPages"] == 1


async def test_count_modes(paging_client):
    exact = await get_page(paging_client, "/v1/users", count="exact", limit="4")
    assert exact["pagination"]["total"] == 25 and exact["pagination"]["totalPages"] == 7
    none = await get_page(paging_client, "/v1/users", count="none", limit="4")
    assert none["pagination"]["total"] is None and none["pagination"]["totalPages"] is None
    assert none["pagination"]["hasNext"] is True and none["data"] == exact["data"]
    last = await get_page(paging_client, "/v1/users", count="none", limit="5", page="5")
    assert last["pagination"]["hasNext"] is False and len(last["data"]) == 5
    # a small table is counted exactly even when an estimate is asked for
    estimated = await get_page(paging_client, "/v1/users", count="estimated", name="like.P1*")
    assert estimated["pagination"]["total"] == 10


@pytest.fixture
async def estimate_db():
    url = await create_database()
    try:
        await asyncio.to_thread(migrate.apply, url)
        conn = await asyncpg.connect(url)
        try:
            # parallel plans even for this small table, no autovacuum: the planner's count stays stale
            name = urlsplit(url).path.lstrip("/")  # a socket URL ends in ?host=/dir
            for setting in ("parallel_setup_cost = 0", "parallel_tuple_cost = 0",
                            "min_parallel_table_scan_size = 0", "max_parallel_workers_per_gather = 2"):
                await conn.execute(f'ALTER DATABASE "{name}" SET {setting}')
            await conn.execute("ALTER TABLE users SET (autovacuum_enabled = false)")
            await insert_users(conn, [(f"e{i:05d}", f"e{i:05d}@estimate.test", None, None, None, "USER",
                                       T(1) + timedelta(seconds=i)) for i in range(3000)])
            await conn.execute("ANALYZE users")
            await conn.execute("DELETE FROM users WHERE id >= 'e01000'")  # 1000 rows left, planner says 3000
        finally:
            await conn.close()
        yield url
    finally:
        await drop_database(url)


async def test_count_estimated_uses_the_planner_on_a_big_table(estimate_db, redis_url, aiohttp_client):
    client = await aiohttp_client(create_app(make_settings(estimate_db, redis_url, cache_enabled=False)))
    exact = await get_page(client, "/v1/users", count="exact", limit="1")
    assert exact["pagination"]["total"] == 1000
    estimated = await get_page(client, "/v1/users", count="estimated", limit="1")
    assert 2500 <= estimated["pagination"]["total"] <= 3500  # the planner's figure, not a COUNT
    assert estimated["data"] == exact["data"]
    # below ESTIMATE_EXACT_BELOW rows the estimate is replaced by the exact count
    few = await get_page(client, "/v1/users", count="estimated", limit="1", email="like.e0001*")
    assert few["pagination"]["total"] == 10


async def test_sort_multi_field_with_descending(client):
    # role ascending is the enum's order (USER, ADMIN); then newest first
    assert await ids(client, "/v1/users", sort="role,-createdAt") == ["u6", "u5", "u3", "u2", "u4", "u1"]
    assert await ids(client, "/v1/users", sort="-role,createdAt") == ["u1", "u4", "u2", "u3", "u5", "u6"]
    assert await ids(client, "/v1/users", sort="email") == ["u1", "u2", "u3", "u4", "u5", "u6"]
    assert await ids(client, "/v1/users", sort="-email") == ["u6", "u5", "u4", "u3", "u2", "u1"]
    assert await ids(client, "/v1/users") == ["u6", "u5", "u4", "u3", "u2", "u1"]  # default -createdAt
    # NULL sorts as the smallest value: first ascending, last descending
    assert await ids(client, "/v1/users", sort="name") == ["u3", "u1", "u2", "u4", "u5", "u6"]
    assert await ids(client, "/v1/users", sort="-name") == ["u6", "u5", "u4", "u2", "u1", "u3"]
    assert await ids(client, "/v1/subscriptions", sort="-cancelAtPeriodEnd,status,id") == \
        ["s3", "s2", "s1", "s4", "s5"]
    assert await ids(client, "/v1/users/u1/accounts", sort="-expires_at") == ["a3", "a2", "a1", "a4"]


async def test_select_returns_only_the_named_fields(client):
    body = await get_page(client, "/v1/users", select="id,email", sort="-createdAt", limit="2")
    assert body["data"] == [{"id": "u6", "email": "fay@gamma.test"}, {"id": "u5", "email": "eve@gamma.test"}]
    body = await get_page(client, "/v1/users", select="email", sort="name", name="eq.Ann")
    assert body["data"] == [{"email": "ann@alpha.test"}]
    body = await get_page(client, "/v1/users", select="id, role ,emailVerified", sort="email", limit="1")
    assert body["data"] == [{"id": "u1", "role": "ADMIN", "emailVerified": "2026-01-01T10:00:00.000Z"}]


async def test_default_fields(client):
    body = await get_page(client, "/v1/users", email="eq.ann@alpha.test")
    assert body["data"] == [{"id": "u1", "email": "ann@alpha.test", "emailVerified": "2026-01-01T10:00:00.000Z",
                             "name": "Ann", "image": "https://img.test/1", "role": "ADMIN",
                             "createdAt": "2026-01-01T10:00:00.000Z", "updatedAt": "2026-01-01T10:00:00.000Z"}]
    sub = (await get_page(client, "/v1/subscriptions", id="eq.s3"))["data"][0]
    assert sub["cancelAtPeriodEnd"] is True and sub["currentPeriodEnd"] is None and sub["status"] == "ACTIVE"
    account = (await get_page(client, "/v1/users/u1/accounts", id="eq.a2"))["data"][0]
    assert account["expires_at"] == 200 and account["provider"] == "github" and account["userId"] == "u1"
    chart = (await get_page(client, "/v1/charts", id="eq.c4"))["data"][0]
    assert chart["chartType"] == "HORARY" and chart["userId"] is None
    assert chart["expiresAt"] == "2100-01-01T00:00:00.000Z"


# ---- 3. errors name the parameter -------------------------------------------------------------------

ERRORS = [
    ("/v1/users", {"nope": "eq.1"}, "nope"),
    ("/v1/users", {"password": "eq.x"}, "password"),
    ("/v1/users", {"email": "zz.x"}, "email"),
    ("/v1/users", {"email": "not.zz.x"}, "email"),
    ("/v1/users", {"email": "bob@alpha.test"}, "email"),
    ("/v1/users", {"email": "not.not.eq.x"}, "email"),
    ("/v1/users", {"createdAt": "eq.yesterday"}, "createdAt"),
    ("/v1/users", {"createdAt": "gt.2026-13-01"}, "createdAt"),
    ("/v1/users", {"emailVerified": "in.(2026-01-01,nope)"}, "emailVerified"),
    ("/v1/users", {"createdAt": "like.2026*"}, "createdAt"),
    ("/v1/users", {"createdAt": "eq.0001-01-01T00:00:00+14:00"}, "createdAt"),  # no UTC datetime
    ("/v1/users", {"email": "eq.a\x00b"}, "email"),  # PostgreSQL text has no NUL
    ("/v1/users", {"email": "in.(a,b\x00)"}, "email"),
    ("/v1/users", {"role": "eq.owner"}, "role"),
    ("/v1/users", {"role": "in.admin"}, "role"),
    ("/v1/users", {"role": "in.()"}, "role"),
    ("/v1/users", {"role": "ilike.adm*"}, "role"),
    ("/v1/users", {"name": "is.true"}, "name"),
    ("/v1/users", {"name": "is.nothing"}, "name"),
    ("/v1/subscriptions", {"cancelAtPeriodEnd": "eq.yes"}, "cancelAtPeriodEnd"),
    ("/v1/subscriptions", {"status": "eq.gone"}, "status"),
    ("/v1/users/u1/accounts", {"expires_at": "eq.abc"}, "expires_at"),
    ("/v1/users/u1/accounts", {"expires_at": "gt.1.5"}, "expires_at"),
    ("/v1/users/u1/accounts", {"expires_at": "lt.2147483648"}, "expires_at"),
    ("/v1/users/u1/accounts", {"refresh_token": "eq.x"}, "refresh_token"),
    ("/v1/users", {"limit": "0"}, "limit"),
    ("/v1/users", {"limit": "101"}, "limit"),
    ("/v1/users", {"limit": "ten"}, "limit"),
    ("/v1/users", {"page": "0"}, "page"),
    ("/v1/users", {"page": "-1"}, "page"),
    ("/v1/users", {"page": "1.5"}, "page"),
    ("/v1/users", {"sort": "password"}, "sort"),
    ("/v1/users", {"sort": "-nope"}, "sort"),
    ("/v1/users", {"sort": "image"}, "sort"),  # declared, but not sortable
    ("/v1/users", {"sort": "email,email"}, "sort"),
    ("/v1/users", {"sort": ""}, "sort"),
    ("/v1/users", {"select": "id,password"}, "select"),
    ("/v1/users", {"select": "nope"}, "select"),
    ("/v1/users", {"select": ","}, "select"),
    ("/v1/users", {"cursor": "garbage!"}, "cursor"),
    ("/v1/users", {"cursor": "eyJ4IjoxfQ"}, "cursor"),  # base64 of {"x":1}
    ("/v1/users", {"count": "maybe"}, "count"),
    ("/v1/charts", {"chartType": "eq.nope", "limit": "5"}, "chartType"),
]


@pytest.mark.parametrize("path, params, field", ERRORS, ids=[f"{e[0]}?{e[1]}" for e in ERRORS])
async def test_errors_are_400_naming_the_parameter(client, path, params, field):
    body = await problem(client, path, params)
    assert body["errors"][0]["field"] == field
    assert body["status"] == 400 and field in body["detail"]


async def test_cursor_errors(client):
    first = await get_page(client, "/v1/users", sort="email", limit="2")
    cursor = first["pagination"]["nextCursor"]
    assert cursor
    body = await problem(client, "/v1/users", {"cursor": cursor, "page": "2", "sort": "email"})
    assert body["errors"][0]["field"] == "cursor"
    # a cursor of another sort order, or of another list, is refused
    body = await problem(client, "/v1/users", {"cursor": cursor, "sort": "-email"})
    assert body["errors"][0]["field"] == "cursor"
    users_cursor = (await get_page(client, "/v1/users", limit="2"))["pagination"]["nextCursor"]
    body = await problem(client, "/v1/subscriptions", {"cursor": users_cursor})  # both sort by -createdAt
    assert body["errors"][0]["field"] == "cursor"
    body = await problem(client, "/v1/users", {"cursor": cursor[:-3], "sort": "email"})
    assert body["errors"][0]["field"] == "cursor"


async def test_no_cursor_for_a_sort_on_a_nullable_field(client):
    page = await get_page(client, "/v1/users", sort="name", limit="2")
    assert page["pagination"]["hasNext"] is True
    assert page["pagination"]["nextCursor"] is None  # keyset paging needs non-null sort fields
    page = await get_page(client, "/v1/users", sort="email", limit="2")
    fake = page["pagination"]["nextCursor"]
    body = await problem(client, "/v1/users", {"cursor": fake, "sort": "name"})
    assert body["errors"][0]["field"] == "cursor"


# ---- 4. keyset paging: every row exactly once while rows are inserted ---------------------------------

@pytest.fixture
async def keyset_db():
    url = await create_database()
    try:
        await asyncio.to_thread(migrate.apply, url)
        conn = await asyncpg.connect(url)
        try:
            # ties on createdAt (pairs share a time) so that id must break them
            await insert_users(conn, [(f"k{i:02d}", f"m-{i:02d}@mid.test", None, None, None,
                                       "ADMIN" if i % 3 == 0 else "USER", T(1) + timedelta(hours=i // 2))
                                      for i in range(23)])
        finally:
            await conn.close()
        yield url
    finally:
        await drop_database(url)


async def _ordered_ids(conn, order_by: str, wanted: set[str]) -> list[str]:
    """The database's own order (its collation) of the rows a cursor walk should have returned."""
    return [r["id"] for r in await conn.fetch(f"SELECT id FROM users ORDER BY {order_by}") if r["id"] in wanted]


KEYSET = {
    # sort: (ORDER BY, the row inserted before the cursor (never seen), the row inserted after it (seen))
    "-createdAt": ('"createdAt" DESC, id DESC',
                   lambda n: (f"new{n}", f"new{n}@x.test", "USER", datetime(2030, 1, 1) + timedelta(hours=n)),
                   lambda n: (f"old{n}", f"old{n}@x.test", "USER", datetime(2020, 1, 1) - timedelta(hours=n))),
    "email": ("email, id",
              lambda n: (f"a{n}", f"a-{n}@a.test", "USER", T(1)),
              lambda n: (f"z{n}", f"z-{n}@z.test", "USER", T(1))),
    "role,-createdAt": ('role, "createdAt" DESC, id DESC',
                        lambda n: (f"un{n}", f"un{n}@x.test", "USER", datetime(2030, 1, 1) + timedelta(hours=n)),
                        lambda n: (f"ao{n}", f"ao{n}@x.test", "ADMIN", datetime(2020, 1, 1) - timedelta(hours=n))),
}


@pytest.mark.parametrize("sort", list(KEYSET))
async def test_keyset_pages_return_every_row_once_while_rows_are_inserted(keyset_db, redis_url, aiohttp_client,
                                                                          sort):
    order_by, before, after = KEYSET[sort]
    client = await aiohttp_client(create_app(make_settings(keyset_db, redis_url, cache_enabled=False)))
    conn = await asyncpg.connect(keyset_db)
    try:
        originals = {r["id"] for r in await conn.fetch("SELECT id FROM users")}
        seen, inserted_after, cursor, pages = [], set(), None, 0
        while True:
            query = {"sort": sort, "limit": "4", "count": "none"}
            if cursor:
                query["cursor"] = cursor
            page = await get_page(client, "/v1/users", **query)
            pages += 1
            seen += [row["id"] for row in page["data"]]
            assert page["pagination"]["hasPrev"] is (pages > 1)
            cursor = page["pagination"]["nextCursor"]
            assert (cursor is not None) is page["pagination"]["hasNext"]
            if cursor is None:
                break
            assert pages < 30
            new_before, new_after = before(pages), after(pages)
            for row_id, email, role, created in (new_before, new_after):
                await insert_users(conn, [(row_id, email, None, None, None, role, created)])
            inserted_after.add(new_after[0])
        assert pages >= 6
        assert len(seen) == len(set(seen)), "a row came twice"
        assert seen == await _ordered_ids(conn, order_by, originals | inserted_after)
    finally:
        await conn.close()


async def test_keyset_pages_equal_offset_pages(paging_client):
    for sort in ("-createdAt", "email", "-name,id", "name"):
        by_offset = await ids(paging_client, "/v1/users", sort=sort)
        if sort in ("-name,id", "name"):  # nullable sort field: no cursor to follow
            continue
        walked, cursor = [], None
        while True:
            query = {"sort": sort, "limit": "7"}
            if cursor:
                query["cursor"] = cursor
            page = await get_page(paging_client, "/v1/users", **query)
            walked += [row["id"] for row in page["data"]]
            assert page["pagination"]["total"] == 25
            cursor = page["pagination"]["nextCursor"]
            if not cursor:
                break
        assert walked == by_offset, sort


async def test_cursor_with_filters_and_select(paging_client):
    first = await get_page(paging_client, "/v1/users", name="like.P1*", select="email", limit="4", sort="email")
    assert [r["email"] for r in first["data"]] == [f"p1{i}@paging.test" for i in range(4)]
    second = await get_page(paging_client, "/v1/users", name="like.P1*", select="email", limit="4", sort="email",
                            cursor=first["pagination"]["nextCursor"])
    assert [r["email"] for r in second["data"]] == [f"p1{i}@paging.test" for i in range(4, 8)]
    assert second["pagination"]["total"] == 10 and second["pagination"]["hasPrev"] is True


# ---- 5. random query strings never give a 5xx -----------------------------------------------------------

INJECTIONS = ["'; DROP TABLE users; --", '") OR 1=1 --', "' OR '1'='1", "1; SELECT pg_sleep(5)", "$1", "$$",
              "\\", "%", "_", "*", "ünïcødé", "𝔘𝔫𝔦", "\u202e", "\x00", "null", "true", "(", ")", ",", ".",
              "not.", "eq.", "in.(", "2026-01-01T00:00:00Z", "-1", "99999999999999999999", "1e999",
              "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
KEYS = ["id", "email", "emailVerified", "name", "image", "role", "createdAt", "updatedAt", "password",
        "page", "limit", "sort", "select", "cursor", "count", "", "users", 'email"', "role;"]
OPS = ["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "in", "is", "not.eq", "not.in", "not.is",
       "not.like", "zz", "", "not"]
pieces = st.one_of(st.sampled_from(INJECTIONS), st.sampled_from(KEYS),
                   st.text(max_size=12), st.integers(-5, 200).map(str))
values = st.one_of(
    pieces,
    st.builds(lambda op, v: f"{op}.{v}", st.sampled_from(OPS), pieces),
    st.builds(lambda op, vs: f"{op}.({','.join(vs)})", st.sampled_from(["in", "not.in"]),
              st.lists(pieces, max_size=4)),
    st.lists(st.builds(lambda d, k: d + k, st.sampled_from(["", "-", "+"]), st.sampled_from(KEYS)),
             max_size=4).map(",".join),
)
query_pairs = st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), pieces), values), max_size=5)
raw_query = st.lists(st.sampled_from(["%00", "%ff", "%ED%A0%80", "%", "%2", "&", "=", "==", "+", ";", "#",
                                      "a", "email", "role", "eq.", "limit", "sort"]), max_size=12).map("".join)


@pytest.fixture(scope="module")
def live_client(fixed_db, redis_url):
    """A test client on an event loop of its own, for the synchronous hypothesis test below."""
    from aiohttp.test_utils import TestClient, TestServer

    async def start():
        client = TestClient(TestServer(create_app(make_settings(fixed_db, redis_url, cache_enabled=False))))
        await client.start_server()
        return client

    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(start())
    yield loop, client
    loop.run_until_complete(client.close())
    loop.close()


async def _check_no_5xx(client, url: URL, path: str):
    r = await client.get(url, headers=READ)
    body = await r.read()
    assert r.status in (200, 400, 404), (path, r.status, body[:300])
    if r.status == 400:
        assert r.content_type == "application/problem+json"
        problem_body = await r.json()
        assert problem_body["code"] == "bad_request" and problem_body["errors"][0]["field"] is not None


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(pairs=[("email", "eq.a\x00")], raw="", path="/v1/users")
@example(pairs=[("createdAt", "gt.9999-12-31T23:59:59-14:00")], raw="", path="/v1/users")
@example(pairs=[("sort", "email"), ("cursor", "WyJ4IixbImEiLCJiIl1d")], raw="%ff%00", path="/v1/users")
@given(pairs=query_pairs, raw=raw_query,
       path=st.sampled_from(["/v1/users", "/v1/users", "/v1/subscriptions", "/v1/users/u1/accounts", "/v1/charts"]))
def test_random_query_strings_never_give_a_5xx(live_client, pairs, raw, path):
    from urllib.parse import quote

    loop, client = live_client
    encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    query = "&".join(filter(None, [encoded, raw]))
    url = URL(f"{path}?{query}", encoded=True)
    loop.run_until_complete(_check_no_5xx(client, url, f"{path}?{query}"))
