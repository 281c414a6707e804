"""A write whose reply is lost (the connection drops after the server committed it) still drops the cache
entries it may have changed: the client got an error and cannot know, but every later read must show
what the database holds. Without this, a session signed out during a network blip or a failover kept
being served from the cache as valid until its TTL.

The database is reached through tests/pg_reply_cutter.py, which forwards a write to the real server and
cuts the service's connection before the reply comes back."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from service.app import create_app
from tests.conftest import READ, WRITE, make_settings, unique_email
from tests.pg_reply_cutter import ReplyCutter
from tests.stripe_helpers import (
    checkout_event,
    deliver,
    deliver_ok,
    shown_subscription,
    subscription_event,
    uid,
)


@pytest.fixture
async def cutter(migrated_database_url):
    parts = urlsplit(migrated_database_url)
    proxy = ReplyCutter(parts.hostname, parts.port or 5432)
    port = await proxy.start()
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{port}") if parts.port \
        else f"{parts.netloc}:{port}"
    proxy.url = urlunsplit(parts._replace(netloc=netloc))
    yield proxy
    await proxy.close()


@pytest.fixture
async def api(aiohttp_client, cutter, redis_url):
    # One pooled connection: the write and the reads after it take the same path through the proxy.
    settings = make_settings(cutter.url, redis_url, pool_min_size=1, pool_max_size=1, retry_after_seconds=1)
    return await aiohttp_client(create_app(settings))


async def signed_in(api) -> tuple[str, str]:
    r = await api.post("/v1/users", json={"email": unique_email("cut")}, headers=WRITE)
    assert r.status == 201, await r.text()
    user_id = (await r.json())["id"]
    token = f"tok-{uuid.uuid4().hex}"
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    r = await api.post("/v1/sessions", json={"sessionToken": token, "userId": user_id, "expires": expires},
                       headers=WRITE)
    assert r.status == 201, await r.text()
    return user_id, token


async def lookup(api, token: str) -> int:
    r = await api.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)
    return r.status


async def committed(url: str, sql: str, *args, want) -> bool:
    """Whether the server committed the cut write: it runs it a moment after the client saw the
    connection drop, so poll for up to 5 s."""
    conn = await asyncpg.connect(url)
    try:
        for _ in range(50):
            if await conn.fetchval(sql, *args) == want:
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        await conn.close()


async def session_in_database(url: str, token: str) -> bool:
    return not await committed(url, 'SELECT count(*) FROM sessions WHERE "sessionToken" = $1', token, want=0)


async def test_a_sign_out_whose_reply_is_lost_is_not_served_from_the_cache(api, cutter, migrated_database_url):
    _, token = await signed_in(api)
    assert await lookup(api, token) == 200  # cached now
    cutter.arm(token.encode())
    r = await api.post("/v1/sessions/delete", json={"sessionToken": token}, headers=WRITE)
    assert r.status >= 500 and r.status != 500, await r.text()  # 503: the outcome is unknown to the service
    assert cutter.cut.is_set()
    assert not await session_in_database(migrated_database_url, token)  # the server did delete it
    assert await lookup(api, token) == 404


async def test_signing_out_everywhere_with_a_lost_reply_drops_every_cached_session(api, cutter,
                                                                                    migrated_database_url):
    user_id, token = await signed_in(api)
    assert await lookup(api, token) == 200
    cutter.arm(user_id.encode(), b"Q", b"COMMIT")  # a transaction: its COMMIT's reply is lost
    r = await api.delete(f"/v1/users/{user_id}/sessions", headers=WRITE)
    assert r.status >= 500 and r.status != 500, await r.text()
    assert cutter.cut.is_set()
    assert not await session_in_database(migrated_database_url, token)
    assert await lookup(api, token) == 404


async def test_a_stripe_event_whose_commit_reply_is_lost_does_not_leave_the_old_status_cached(
        api, cutter, migrated_database_url):
    """Stripe retries the event after our 503, and the retry is a `duplicate` that (rightly) changes
    nothing: the invalidation must happen on the failed attempt, or the cached status is stale."""
    r = await api.post("/v1/users", json={"email": unique_email("cut-stripe")}, headers=WRITE)
    user_id, customer, sub = (await r.json())["id"], uid("cus"), uid("sub")
    await deliver_ok(api, checkout_event(user_id=user_id, customer=customer, sub=sub, created=1_760_000_000))
    await deliver_ok(api, subscription_event("created", sub=sub, customer=customer, created=1_760_000_001))
    assert (await shown_subscription(api, user_id))["status"] == "ACTIVE"  # cached now
    evt = subscription_event("updated", sub=sub, customer=customer, created=1_760_000_002, status="past_due")
    cutter.arm(evt["id"].encode(), b"Q", b"COMMIT")
    r = await deliver(api, evt)
    assert r.status == 503, await r.text()
    assert await committed(migrated_database_url, 'SELECT status::text FROM subscriptions WHERE "userId" = $1',
                           user_id, want="PAST_DUE")
    assert (await deliver_ok(api, evt))["outcome"] == "duplicate"  # Stripe's retry
    assert (await shown_subscription(api, user_id))["status"] == "PAST_DUE"
