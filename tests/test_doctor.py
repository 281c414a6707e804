"""`python -m service doctor`: every check passes on a healthy deployment and flags its own broken thing."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time

import asyncpg
import pytest

from service import PROJECT_ROOT, doctor, migrate
from service.crypto import FieldCipher
from tests.redis_server import RedisServer
from tests.test_roles import roles  # noqa: F401 - the fixture: owner, app and read-only roles

KEY_A = "a:" + base64.b64encode(b"a" * 32).decode()
KEY_B = "b:" + base64.b64encode(b"b" * 32).decode()


def environment(database_url, redis_url=None, **more) -> dict:
    env = {"DATABASE_URL": database_url, "STRIPE_WEBHOOK_SECRET": "whsec_test", "FIELD_ENCRYPTION_KEY": KEY_A}
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(more)
    return env


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


async def run(env, clock=time.time) -> dict:
    return by_name(await doctor.run_checks(env, clock))


@pytest.fixture
async def migrated(empty_database):
    migrate.apply(empty_database)
    return empty_database


@pytest.fixture
async def tuned_redis():
    """A Redis of this test with a memory limit and an evicting policy: what production should have."""
    server = RedisServer()
    await server.start()
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(server.url)
    await client.config_set("maxmemory", "64mb")
    await client.config_set("maxmemory-policy", "allkeys-lru")
    await client.aclose()
    yield server.url
    server.kill()


async def test_a_healthy_deployment_passes_every_check(roles, tuned_redis):  # noqa: F811
    migrate.apply(roles["owner"])
    checks = await doctor.run_checks(environment(roles["app"], tuned_redis))
    assert [(c.name, c.status) for c in checks] == [
        ("settings", "ok"), ("database", "ok"), ("role", "ok"), ("migrations", "ok"), ("indexes", "ok"),
        ("time zone", "ok"), ("clock", "ok"), ("field keys", "ok"), ("redis", "ok"), ("stripe", "ok")], checks
    assert doctor.report(checks, as_json=False, out=io.StringIO()) == 0


@pytest.mark.parametrize("bad, named", [
    ({"BCRYPT_ROUNDS": "twelve"}, "BCRYPT_ROUNDS"),
    ({"FIELD_ENCRYPTION_KEY": "k1:not base64!"}, "FIELD_ENCRYPTION_KEY"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
])
async def test_bad_settings_fail_and_stop_there(migrated_database_url, bad, named):
    checks = await doctor.run_checks(environment(migrated_database_url, **bad))
    assert [(c.name, c.status) for c in checks] == [("settings", "fail")]
    assert named in checks[0].detail


async def test_unreachable_database_fails():
    checks = by_name(await doctor.run_checks(environment("postgresql://root@127.0.0.1:9/none", CONNECT_TIMEOUT="1")))
    assert checks["database"].status == "fail" and "cannot connect" in checks["database"].detail


async def test_superuser_owning_the_tables_is_warned(migrated):
    role = (await run(environment(migrated)))["role"]
    assert role.status == "warn"
    assert "superuser" in role.detail and "owns the tables" in role.detail and "DDL" in role.detail


async def test_app_role_that_can_create_objects_is_warned(roles, empty_database):  # noqa: F811
    migrate.apply(roles["owner"])
    admin = await asyncpg.connect(empty_database)  # the same database, as the test server's superuser
    app_role = roles["app"].split("//")[1].split(":")[0]
    try:
        await admin.execute(f'GRANT CREATE ON SCHEMA public TO "{app_role}"')
        role = (await run(environment(roles["app"])))["role"]
    finally:
        await admin.execute(f'REVOKE CREATE ON SCHEMA public FROM "{app_role}"')
        await admin.close()
    assert role.status == "warn" and "can create objects (DDL)" in role.detail
    assert "superuser" not in role.detail and "owns" not in role.detail


async def test_unmigrated_database_fails_role_migrations_and_field_keys(empty_database):
    checks = await run(environment(empty_database))
    assert checks["migrations"].status == "fail"
    assert "0 applied" in checks["migrations"].detail and "0001_enums" in checks["migrations"].detail
    assert checks["role"].status == "fail" and "no users table" in checks["role"].detail
    assert checks["field keys"].status == "fail"


async def test_a_pending_migration_fails(migrated):
    last = migrate.status(migrated)[-1].id
    migrate.rollback(migrated, 1)
    migrations = (await run(environment(migrated)))["migrations"]
    assert migrations.status == "fail" and f"1 pending: {last}" in migrations.detail


async def test_a_migration_changed_since_it_was_applied_fails_the_migrations_check(migrated):
    # As if 0002's file had been edited after it was applied: its recorded checksum no longer matches.
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute("UPDATE _aw_migration_checksum SET sha256 = repeat('0', 64) "
                           "WHERE migration_id = '0002_users'")
    finally:
        await conn.close()
    migrations = (await run(environment(migrated)))["migrations"]
    assert migrations.status == "fail" and "0002_users" in migrations.detail


async def test_invalid_index_left_by_a_failed_concurrent_build_fails(migrated):
    conn = await asyncpg.connect(migrated)
    try:
        await conn.execute("CREATE TABLE doctor_dupes (x int); INSERT INTO doctor_dupes VALUES (1), (1)")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY doctor_dupes_x ON doctor_dupes (x)")
    finally:
        await conn.close()
    indexes = (await run(environment(migrated)))["indexes"]
    assert indexes.status == "fail" and "doctor_dupes_x on doctor_dupes" in indexes.detail


async def test_database_time_zone_other_than_utc_is_warned(migrated):
    conn = await asyncpg.connect(migrated)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = 'America/New_York'")
    finally:
        await conn.close()
    zone = (await run(environment(migrated)))["time zone"]
    assert zone.status == "warn" and "America/New_York" in zone.detail


@pytest.mark.parametrize("offset, status", [(0, "ok"), (5, "warn"), (-120, "fail")])
async def test_clock_skew_against_the_database(migrated_database_url, offset, status):
    clock = (await run(environment(migrated_database_url), clock=lambda: time.time() + offset))["clock"]
    assert clock.status == status, clock.detail
    if offset:
        assert ("behind" if offset > 0 else "ahead of") in clock.detail


async def test_stored_tokens_under_a_key_id_no_longer_configured_fail(migrated):
    old = FieldCipher(KEY_B).encrypt("ya29.secret-token", "accounts", "access_token", "a1")
    conn = await asyncpg.connect(migrated)
    try:
        user_id = "c" + "0" * 24
        await conn.execute("INSERT INTO users (id, email, \"updatedAt\") VALUES ($1, 'k@example.com', now())", user_id)
        await conn.execute(
            "INSERT INTO accounts (id, \"userId\", type, provider, \"providerAccountId\", access_token) "
            "VALUES ('a1', $1, 'oauth', 'google', 'g1', $2)", user_id, old)
    finally:
        await conn.close()
    keys = (await run(environment(migrated)))["field keys"]
    assert keys.status == "fail" and "key ids not in FIELD_ENCRYPTION_KEY: b" in keys.detail
    rotated = (await run(environment(migrated, FIELD_ENCRYPTION_KEY=f"{KEY_A},{KEY_B}")))["field keys"]
    assert rotated.status == "ok" and "uses b" in rotated.detail
    unencrypted = (await run(environment(migrated, FIELD_ENCRYPTION_KEY="")))["field keys"]
    assert unencrypted.status == "fail"  # the stored token's key is missing all the same


async def test_redis_unreachable_fails_and_noeviction_is_warned(migrated_database_url):
    down = (await run(environment(migrated_database_url, "redis://127.0.0.1:9/0")))["redis"]
    assert down.status == "fail" and "cannot reach 127.0.0.1:9:" in down.detail
    server = RedisServer()
    await server.start()
    try:
        default = (await run(environment(migrated_database_url, server.url)))["redis"]
    finally:
        server.kill()
    assert default.status == "warn" and "noeviction" in default.detail


async def test_missing_or_odd_stripe_secret(migrated_database_url):
    missing = (await run(environment(migrated_database_url, STRIPE_WEBHOOK_SECRET="")))["stripe"]
    assert missing.status == "fail" and "503" in missing.detail
    odd = (await run(environment(migrated_database_url, STRIPE_WEBHOOK_SECRET="sk_live_oops")))["stripe"]
    assert odd.status == "warn" and "sk_liv..." in odd.detail and "oops" not in odd.detail


def test_command_line_prints_a_line_per_check_and_exits_1_on_a_failure(migrated):
    # Its own database: the session's shared one holds other tests' accounts, encrypted under their keys.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(environment(migrated, STRIPE_WEBHOOK_SECRET=""))
    env.pop("REDIS_URL", None)
    text = subprocess.run([sys.executable, "-m", "service", "doctor"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert text.returncode == 1, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 10 and lines[-1].split()[:2] == ["fail", "stripe"]
    assert all(line.split()[0] in ("ok", "warn", "fail") for line in lines)
    as_json = subprocess.run([sys.executable, "-m", "service", "doctor", "--json"], cwd=PROJECT_ROOT, env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert as_json.returncode == 1
    body = json.loads(as_json.stdout)
    assert body["ok"] is False
    assert [c["name"] for c in body["checks"]][:2] == ["settings", "database"]
    assert {"name": "redis", "status": "ok", "detail": "not configured: each instance caches in process"} in body["checks"]
    env["STRIPE_WEBHOOK_SECRET"] = "whsec_x"
    healthy = subprocess.run([sys.executable, "-m", "service", "doctor", "--json"], cwd=PROJECT_ROOT, env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert healthy.returncode == 0 and json.loads(healthy.stdout)["ok"] is True, healthy.stdout  # warnings allowed
