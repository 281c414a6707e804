"""Password work is rationed (passwords.py): a flood of sign-ups gets fast refusals instead of making
sign-ins wait, work for a client that has gone is dropped, and the no-password path costs a real check."""

import asyncio

import aiohttp
import pytest

from service.app import create_app
from service.deps import DEPS
from tests.conftest import READ, WRITE, make_settings, unique_email


@pytest.fixture
async def app_with(aiohttp_client, migrated_database_url, redis_url):
    async def start(**overrides):
        client = await aiohttp_client(create_app(make_settings(migrated_database_url, redis_url, **overrides)))
        return client, client.server.app[DEPS]

    return start


async def test_a_flood_of_sign_ups_is_refused_fast_and_another_callers_sign_in_still_runs(app_with):
    client, deps = await app_with(bcrypt_rounds=8, bcrypt_threads=1, bcrypt_queue_size=1)
    r = await client.post("/v1/users", headers=WRITE, json={"email": unique_email(), "password": "pw-1"})
    user = await r.json()
    flood = [client.post("/v1/users", headers=WRITE, json={"email": unique_email(), "password": "pw"})
             for _ in range(20)]
    sign_in = client.post(f"/v1/users/{user['id']}/verify-password", headers=READ, json={"password": "pw-1"})
    *answers, verified = await asyncio.gather(*flood, sign_in)
    statuses = [a.status for a in answers]
    refused = [a for a in answers if a.status == 429]
    assert refused, statuses  # the writer holds its share (1 of 2 places); the rest is refused at once
    assert set(statuses) <= {201, 429}, statuses
    for answer in refused:
        assert answer.headers["Retry-After"] == "1"
        assert answer.content_type == "application/problem+json"
    assert verified.status == 200 and await verified.json() == {"valid": True}
    assert deps.passwords.admitted == 0  # every place given back


async def test_a_full_pool_answers_503_with_retry_after(app_with):
    client, _ = await app_with(bcrypt_rounds=8, bcrypt_threads=1, bcrypt_queue_size=1,
                               bcrypt_caller_share=1.0)
    answers = await asyncio.gather(*(
        client.post("/v1/users", headers=WRITE, json={"email": unique_email(), "password": "pw"})
        for _ in range(8)))
    statuses = sorted(a.status for a in answers)
    assert 503 in statuses and 201 in statuses, statuses
    full = next(a for a in answers if a.status == 503)
    assert full.headers["Retry-After"] == "5"
    assert (await full.json())["code"] == "unavailable"


async def test_bcrypt_threads_sets_the_pool_and_the_dummy_hash_has_the_configured_cost(app_with):
    client, deps = await app_with(bcrypt_rounds=9, bcrypt_threads=3)
    assert deps.passwords.threads == 3 and deps.passwords._executor._max_workers == 3
    r = await client.post("/v1/users", headers=WRITE, json={"email": unique_email()})  # no password
    user = await r.json()
    r = await client.post(f"/v1/users/{user['id']}/verify-password", headers=READ, json={"password": "x"})
    assert await r.json() == {"valid": False}
    # Same cost as a real hash: the no-password answer takes as long as a real check.
    assert deps.passwords._dummy_hash.startswith(b"$2b$09$")


async def test_work_of_a_request_whose_client_has_gone_is_dropped_before_it_starts(app_with):
    client, deps = await app_with(bcrypt_rounds=4, bcrypt_threads=1, bcrypt_queue_size=8,
                                  bcrypt_caller_share=1.0)
    pool = deps.passwords
    emails = [unique_email("abandoned") for _ in range(5)]
    await pool._running.acquire()  # the only thread is busy: every job waits its turn
    try:
        async def abandoned(email):
            with pytest.raises(asyncio.TimeoutError):
                await client.post("/v1/users", headers=WRITE, json={"email": email, "password": "pw"},
                                  timeout=aiohttp.ClientTimeout(total=0.3))

        await asyncio.gather(*(abandoned(e) for e in emails))
        for _ in range(100):  # the server notices the closed connections
            if pool.admitted == len(emails):
                break
            await asyncio.sleep(0.02)
        assert pool.admitted == len(emails)
    finally:
        pool._running.release()
    for _ in range(200):
        if pool.admitted == 0:
            break
        await asyncio.sleep(0.02)
    # Each job was dropped when its turn came (or its handler cancelled by aiohttp): none ever ran.
    assert pool.admitted == 0 and pool.started == 0 and pool.dropped >= 1
    created = await deps.db.fetchval("SELECT count(*) FROM users WHERE email = ANY($1)", emails)
    assert created == 0


async def test_a_batch_takes_turns_and_a_bad_password_in_it_is_a_422_before_any_work(app_with):
    client, _ = await app_with(bcrypt_rounds=4, bcrypt_threads=1, bcrypt_queue_size=1)
    users = [{"email": unique_email(), "password": f"pw-{i}"} for i in range(6)]
    r = await client.post("/v1/users/batch", headers=WRITE, json={"users": users})
    assert r.status == 200 and await r.json() == {"count": 6}
    bad = [{"email": unique_email(), "password": "ok"}, {"email": unique_email(), "password": "x" * 73}]
    r = await client.post("/v1/users/batch", headers=WRITE, json={"users": bad})
    assert r.status == 422 and (await r.json())["errors"][0]["field"] == "users[1].password"
