"""Per-caller budgets (limits.py): one token flooding expensive list queries gets 429 + Retry-After at
once, while another token's requests, and the same token's cheap ones, are admitted."""

import asyncio

import asyncpg
import pytest

from service.app import create_app
from service.limits import (
    DEFAULT_COUNT_MODE,
    LimitsError,
    is_expensive,
    parse_caller_limits,
)
from tests.conftest import READ, WRITE, make_settings
from tests.test_password_work import wait_until

PATTERN = "ilike.*example.com*"  # a pattern filter with an exact count: expensive on a big table


async def test_a_noisy_token_gets_429_and_the_others_are_admitted(aiohttp_client, migrated_database_url, redis_url):
    settings = make_settings(migrated_database_url, redis_url, caller_limits="writer:64:1,reader:64:2",
                             caller_expensive_total=3, pool_max_size=6)
    client = await aiohttp_client(create_app(settings))
    blocker = await asyncpg.connect(migrated_database_url)
    try:
        # Holding the table makes every list query wait, so "in flight" lasts as long as the test says.
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        expensive = {"email": PATTERN, "count": "exact"}
        noisy = [asyncio.ensure_future(client.get("/v1/users", params=expensive, headers=WRITE)) for _ in range(6)]
        await wait_until(lambda: sum(task.done() for task in noisy) == 5)  # all but one answered at once
        refused = [task.result() for task in noisy if task.done()]
        for answer in refused:
            assert answer.status == 429 and answer.headers["Retry-After"] == "1"
            assert (await answer.json())["code"] == "too_many_requests"
        other = asyncio.ensure_future(client.get("/v1/users", params=expensive, headers=READ))
        cheap = asyncio.ensure_future(client.get("/v1/users", params={"count": "none"}, headers=WRITE))
        await asyncio.sleep(1.0)
        assert not other.done() and not cheap.done()  # admitted: waiting for the table, not refused
        await lock.rollback()
        answers = await asyncio.gather(other, cheap, *(t for t in noisy if not t.done()))
        assert [a.status for a in answers] == [200, 200, 200]
    finally:
        await blocker.close()


def test_what_counts_as_expensive():
    assert is_expensive("/v1/users", "GET", {"email": "ilike.*x*", "count": "none"})
    assert is_expensive("/v1/users", "GET", {"email": "not.like.x*", "count": "none"})
    assert is_expensive("/v1/subscriptions", "GET", {}) == (DEFAULT_COUNT_MODE == "exact")
    assert is_expensive("/v1/charts", "GET", {"count": "exact"})
    assert not is_expensive("/v1/users", "GET", {"count": "estimated", "role": "eq.ADMIN"})
    assert not is_expensive("/v1/charts", "GET", {"userId": "u", "chartType": "TROPICAL"})  # one entry
    assert not is_expensive("/v1/users/{id}", "GET", {})
    assert not is_expensive("/v1/users", "POST", {})


def test_caller_limits_setting():
    assert parse_caller_limits("web:32:4, jobs:8:0")["jobs"].expensive == 0
    for bad in ("web:32", "web:0:1", "web:x:1", ":3:1"):
        with pytest.raises(LimitsError):
            parse_caller_limits(bad)
