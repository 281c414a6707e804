"""/metrics answers ops' questions: every metric of docs/operations.md is there, with the right type and
values that follow what happened (pool, statements, cache, bcrypt, Stripe, sweeps, replica, process)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.deps import DEPS
from tests.conftest import READ, WRITE, make_settings, problem, unique_email
from tests.stripe_helpers import checkout_event, deliver_ok, uid


async def scrape(client) -> dict:
    r = await client.get("/metrics")
    assert r.status == 200
    return {family.name: family for family in text_string_to_metric_families(await r.text())}


def value(families, name, sample=None, **labels):
    """The sample's value (sample name defaults to the family's; counters' samples end in _total)."""
    family = families[name]
    wanted = sample or (name + "_total" if family.type == "counter" else name)
    found = [s.value for s in family.samples if s.name == wanted and all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, f"no {wanted} sample with {labels}: {family.samples}"
    return sum(found)


EXPECTED_TYPES = {
    "http_requests": "counter",
    "http_request_duration_seconds": "histogram",
    "db_pool_connections": "gauge",
    "db_pool_waiting": "gauge",
    "db_pool_acquire_wait_seconds": "histogram",
    "db_pool_acquire_timeouts": "counter",
    "db_statement_duration_seconds": "histogram",
    "cache_lookups": "counter",
    "cache_errors": "counter",
    "cache_near_ack_timeouts": "counter",
    "bcrypt_queue_depth": "gauge",
    "bcrypt_queue_wait_seconds": "histogram",
    "bcrypt_duration_seconds": "histogram",
    "stripe_events_received": "counter",
    "stripe_events_backlog": "gauge",
    "stripe_events_backlog_oldest_age_seconds": "gauge",
    "chart_sweep_runs": "counter",
    "chart_sweep_deleted_rows": "counter",
    "chart_sweep_batches": "counter",
    "chart_sweep_last_success_timestamp_seconds": "gauge",
    "db_replica_lag_seconds": "gauge",
    "schema_migrations_pending": "gauge",
    "schema_migrations_drifted": "gauge",
    "ops_gauges_last_refresh_timestamp_seconds": "gauge",
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "python_gc_objects_collected": "counter",
}


@pytest.fixture
async def replica_client(aiohttp_client, migrated_database_url, redis_url):
    """The primary doubles as the "replica" (not in recovery: lag 0), so both pools show."""
    settings = make_settings(migrated_database_url, redis_url, database_read_url=migrated_database_url,
                             metrics_refresh_seconds=0.1)
    return await aiohttp_client(create_app(settings))


async def until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_every_metric_is_present_with_its_type_and_follows_the_traffic(replica_client):
    client = replica_client
    r = await client.post("/v1/users", headers=WRITE, json={"email": unique_email(), "password": "pw one two"})
    user = await r.json()
    for _ in range(3):
        assert (await client.get(f"/v1/users/{user['id']}", headers=READ)).status == 200
    r = await client.post(f"/v1/users/{user['id']}/verify-password", headers=READ, json={"password": "wrong"})
    assert (await r.json()) == {"valid": False}
    # A checkout for a user the database does not have: stored, pending.
    await deliver_ok(client, checkout_event(user_id="c" + uuid.uuid4().hex[:24], customer=uid("cus"),
                                            sub=uid("sub"), created=1000))
    assert (await client.post("/v1/charts/sweep", headers=WRITE)).status == 200

    async def backlog_seen():
        families = await scrape(client)
        return value(families, "stripe_events_backlog", state="pending") >= 1
    await until(backlog_seen)
    families = await scrape(client)

    for name, kind in EXPECTED_TYPES.items():
        assert name in families, f"{name} missing"
        assert families[name].type == kind, f"{name} is a {families[name].type}, not a {kind}"

    assert value(families, "http_requests", route="/v1/users/{id}", status="200", method="GET") == 3
    assert value(families, "db_statement_duration_seconds", "db_statement_duration_seconds_count",
                 statement="get_user_by_id") >= 1
    assert value(families, "db_statement_duration_seconds", "db_statement_duration_seconds_count",
                 statement="insert_user") >= 1
    statements = {s.labels["statement"] for s in families["db_statement_duration_seconds"].samples}
    assert not any(" " in name for name in statements)  # names, never SQL text
    assert value(families, "db_pool_acquire_wait_seconds", "db_pool_acquire_wait_seconds_count",
                 pool="primary") >= 1
    for pool in ("primary", "replica"):
        assert value(families, "db_pool_connections", pool=pool, state="max") == 5
        assert value(families, "db_pool_connections", pool=pool, state="in_use") == 0
    assert value(families, "cache_lookups", kind="user", result="hit") == 2
    assert value(families, "cache_lookups", kind="user", result="miss") >= 1
    assert value(families, "cache_errors") == 0
    assert value(families, "cache_near_ack_timeouts") == 0  # one instance: nobody else to wait for
    assert value(families, "bcrypt_duration_seconds", "bcrypt_duration_seconds_count", operation="hash") >= 1
    assert value(families, "bcrypt_duration_seconds", "bcrypt_duration_seconds_count", operation="check") >= 1
    assert value(families, "bcrypt_queue_depth") == 0
    assert value(families, "stripe_events_received", outcome="pending") >= 1
    assert value(families, "stripe_events_backlog_oldest_age_seconds") >= 0
    assert value(families, "stripe_events_backlog", state="conflict") >= 0  # the series is there for alerts
    assert value(families, "chart_sweep_runs", result="ok") >= 1
    assert value(families, "chart_sweep_last_success_timestamp_seconds") > time.time() - 60
    assert value(families, "db_replica_lag_seconds") == 0
    assert value(families, "schema_migrations_pending") == 0
    assert value(families, "ops_gauges_last_refresh_timestamp_seconds") > time.time() - 60
    assert value(families, "process_resident_memory_bytes") > 0


async def test_no_replica_no_replica_lag_series(client):
    assert "db_replica_lag_seconds" not in await scrape(client)


async def test_pool_saturation_shows_as_waiting_in_use_and_timeouts(aiohttp_client, migrated_database_url, redis_url):
    client = await aiohttp_client(create_app(make_settings(
        migrated_database_url, redis_url, pool_max_size=1, pool_acquire_timeout=0.3)))
    deps = client.server.app[DEPS]
    before = value(await scrape(client), "db_pool_acquire_timeouts", pool="primary")
    async with deps.db.connection():  # the only connection is taken
        waiting = asyncio.create_task(client.get(f"/v1/users/{uuid.uuid4().hex}", headers=READ))

        async def one_waiting():
            return deps.db.waiting == 1
        await until(one_waiting)
        families = await scrape(client)
        assert value(families, "db_pool_waiting", pool="primary") == 1
        assert value(families, "db_pool_connections", pool="primary", state="in_use") == 1
        await problem(await waiting, 503)
    families = await scrape(client)
    assert value(families, "db_pool_acquire_timeouts", pool="primary") == before + 1
    assert value(families, "db_pool_waiting", pool="primary") == 0
    assert value(families, "db_pool_acquire_wait_seconds", "db_pool_acquire_wait_seconds_bucket",
                 pool="primary", le="0.1") < value(families, "db_pool_acquire_wait_seconds",
                                                   "db_pool_acquire_wait_seconds_count", pool="primary")


async def test_bcrypt_queue_depth_and_wait_while_the_pool_is_busy(client):
    pool = client.server.app[DEPS].passwords
    for _ in range(pool.threads):  # every bcrypt thread is taken: the next job waits in the queue
        await pool._running.acquire()
    before = value(await scrape(client), "bcrypt_queue_wait_seconds", "bcrypt_queue_wait_seconds_sum")
    creating = asyncio.create_task(client.post("/v1/users", headers=WRITE,
                                               json={"email": unique_email(), "password": "queued pw"}))

    async def queued():
        return value(await scrape(client), "bcrypt_queue_depth") == 1
    await until(queued)
    await asyncio.sleep(0.2)
    for _ in range(pool.threads):
        pool._running.release()
    assert (await creating).status == 201
    families = await scrape(client)
    assert value(families, "bcrypt_queue_depth") == 0
    assert value(families, "bcrypt_queue_wait_seconds", "bcrypt_queue_wait_seconds_sum") - before >= 0.2


async def test_cache_errors_count_when_redis_is_unreachable(aiohttp_client, migrated_database_url):
    client = await aiohttp_client(create_app(make_settings(
        migrated_database_url, "redis://127.0.0.1:9/0", redis_timeout=0.1, cache_near_ttl=0)))
    await client.get(f"/v1/users/{uuid.uuid4().hex}", headers=READ)
    assert value(await scrape(client), "cache_errors") >= 1
