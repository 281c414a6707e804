"""Password work is rationed (passwords.py): a flood of sign-ups gets fast refusals instead of making
sign-ins wait, work for a client that has gone is dropped, and the no-password path costs a real check."""

import asyncio

import aiohttp
import pytest
from aiohttp import web

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
    pool = deps.passwords
    r = await client.post("/v1/users", headers=WRITE, json={"email": unique_email(), "password": "pw-1"})
    user = await r.json()
    await pool._running.acquire()  # the only thread stays busy while the flood arrives
    try:
        flood = [asyncio.ensure_future(client.post("/v1/users", headers=WRITE,
                                                   json={"email": unique_email(), "password": "pw"}))
                 for _ in range(20)]
        await wait_until(lambda: sum(task.done() for task in flood) == 19)  # answered without waiting
        sign_in = asyncio.ensure_future(client.post(f"/v1/users/{user['id']}/verify-password", headers=READ,
                                                    json={"password": "pw-1"}))
        await wait_until(lambda: pool.admitted == 2)  # the reader still found a place
    finally:
        pool._running.release()
    answers = await asyncio.gather(*flood)
    statuses = sorted(a.status for a in answers)
    assert statuses == [201] + [429] * 19, statuses  # the writer held its share: 1 of the 2 places
    for answer in answers:
        if answer.status == 429:
            assert answer.headers["Retry-After"] == "1"
            assert (await answer.json())["code"] == "too_many_requests"
    verified = await sign_in
    assert verified.status == 200 and await verified.json() == {"valid": True}
    assert pool.admitted == 0  # every place given back


async def test_a_full_pool_answers_503_with_retry_after(app_with):
    client, deps = await app_with(bcrypt_rounds=8, bcrypt_threads=1, bcrypt_queue_size=1,
                                  bcrypt_caller_share=1.0)
    await deps.passwords._running.acquire()
    try:
        calls = [asyncio.ensure_future(client.post("/v1/users", headers=WRITE,
                                                   json={"email": unique_email(), "password": "pw"}))
                 for _ in range(8)]
        await wait_until(lambda: sum(call.done() for call in calls) == 6)
    finally:
        deps.passwords._running.release()
    answers = await asyncio.gather(*calls)
    assert sorted(a.status for a in answers) == [201, 201] + [503] * 6  # 2 places: 1 running, 1 waiting
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


async def test_work_of_a_request_whose_client_has_gone_is_dropped_before_it_starts(migrated_database_url, redis_url):
    # Served as `serve` does (web.run_app: handlers are not cancelled when their client goes away),
    # not as aiohttp's test server does (it cancels them), so the drop itself is what is tested.
    app = create_app(make_settings(migrated_database_url, redis_url, bcrypt_rounds=4, bcrypt_threads=1,
                                   bcrypt_queue_size=8, bcrypt_caller_share=1.0))
    runner = web.AppRunner(app, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        deps = app[DEPS]
        pool = deps.passwords
        emails = [unique_email("abandoned") for _ in range(5)]
        await pool._running.acquire()  # the only thread is busy: every job waits its turn
        try:
            async with aiohttp.ClientSession() as http:
                calls = [asyncio.ensure_future(http.post(base + "/v1/users", headers=WRITE,
                                                         json={"email": e, "password": "pw"})) for e in emails]
                await wait_until(lambda: pool.admitted == len(emails))  # all five waiting for a thread
                for call in calls:
                    call.cancel()  # the clients give up: their connections close
                await asyncio.gather(*calls, return_exceptions=True)
            await wait_until(lambda: all(h.transport is None for h in runner.server.connections))  # seen to go
        finally:
            pool._running.release()
        await wait_until(lambda: pool.admitted == 0)
        assert pool.dropped == len(emails) and pool.started == 0  # none of the five ever ran
        created = await deps.db.fetchval("SELECT count(*) FROM users WHERE email = ANY($1)", emails)
        assert created == 0
    finally:
        await runner.cleanup()


async def wait_until(condition, seconds=10.0):
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_a_batch_takes_turns_and_a_bad_password_in_it_is_a_422_before_any_work(app_with):
    client, _ = await app_with(bcrypt_rounds=4, bcrypt_threads=1, bcrypt_queue_size=1)
    users = [{"email": unique_email(), "password": f"pw-{i}"} for i in range(6)]
    r = await client.post("/v1/users/batch", headers=WRITE, json={"users": users})
    assert r.status == 200 and await r.json() == {"count": 6}
    bad = [{"email": unique_email(), "password": "ok"}, {"email": unique_email(), "password": "x" * 73}]
    r = await client.post("/v1/users/batch", headers=WRITE, json={"users": bad})
    assert r.status == 422 and (await r.json())["errors"][0]["field"] == "users[1].password"
