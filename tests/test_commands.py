"""The operational commands, run as ops would run them: backup/restore round trip, sweep, stripe-replay."""

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from service import migrate
from tests.databases import create_database, drop_database
from tests.stripe_helpers import encode, event

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("users", "accounts", "sessions", "verification_tokens", "subscriptions", "natal_data", "chart_cache",
          "stripe_events", "stripe_subscription_state", "_yoyo_migration")


def cli(*args, database_url, **env):
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "DATABASE_URL": database_url, **env})


async def fill(url):
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("""
            INSERT INTO users (id, email, name) SELECT 'u' || i, 'u' || i || '@example.com', 'n' || i
              FROM generate_series(1, 200) i;
            INSERT INTO accounts (id, "userId", type, provider, "providerAccountId")
              SELECT 'a' || i, 'u' || i, 'oauth', 'github', i::text FROM generate_series(1, 50) i;
            INSERT INTO sessions (id, "sessionToken", "userId", expires)
              SELECT 's' || i, 'tok' || i, 'u' || i, now() + interval '1 day' FROM generate_series(1, 50) i;
            INSERT INTO verification_tokens (identifier, token, expires) VALUES ('a@example.com', 't', now());
            INSERT INTO subscriptions (id, "userId", status) VALUES ('sub1', 'u1', 'ACTIVE');
            INSERT INTO natal_data (id, "userId", "birthDate", location) VALUES ('n1', 'u1', now(), 'Lyon');
            INSERT INTO chart_cache (id, "userId", "chartType", "chartData", "expiresAt")
              SELECT 'c' || i, 'u1', 'TROPICAL', jsonb_build_object('i', i), now() + interval '1 hour'
              FROM generate_series(1, 20) i;
        """)
    finally:
        await conn.close()


async def snapshot(url):
    conn = await asyncpg.connect(url)
    try:
        return {t: sorted(tuple(r) for r in await conn.fetch(f'SELECT * FROM "{t}"')) for t in TABLES}
    finally:
        await conn.close()


async def test_backup_and_restore_round_trip(empty_database, tmp_path):
    migrate.apply(empty_database)
    await fill(empty_database)
    dump = tmp_path / "backup.dump"
    result = cli("backup", "--out", str(dump), database_url=empty_database)
    assert result.returncode == 0, result.stderr
    target = await create_database()
    try:
        result = cli("restore", str(dump), database_url=target)
        assert result.returncode == 0, result.stderr
        assert await snapshot(target) == await snapshot(empty_database)
        # Restoring over a database that has tables is refused.
        result = cli("restore", str(dump), database_url=target)
        assert result.returncode == 1 and "empty database" in result.stderr
    finally:
        await drop_database(target)


async def test_sweep_command_deletes_only_expired_rows(empty_database):
    migrate.apply(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("""
            INSERT INTO chart_cache (id, "chartType", "chartData", "expiresAt")
              SELECT 'old' || i, 'HORARY', '{}', (now() AT TIME ZONE 'UTC') - interval '1 minute'
              FROM generate_series(1, 25) i;
            INSERT INTO chart_cache (id, "chartType", "chartData", "expiresAt")
              SELECT 'live' || i, 'HORARY', '{}', (now() AT TIME ZONE 'UTC') + interval '1 hour'
              FROM generate_series(1, 5) i;
            INSERT INTO users (id, email) VALUES ('u1', 'u1@example.com');
            INSERT INTO sessions (id, "sessionToken", "userId", expires)
              SELECT 's' || i, 'token-' || i, 'u1',
                     (now() AT TIME ZONE 'UTC') + CASE WHEN i <= 13 THEN interval '-1 second' ELSE interval '1 day' END
              FROM generate_series(1, 15) i;
            INSERT INTO verification_tokens (identifier, token, expires)
              SELECT 'u1@example.com', 'vt-' || i,
                     (now() AT TIME ZONE 'UTC') + CASE WHEN i <= 4 THEN interval '-1 hour' ELSE interval '1 hour' END
              FROM generate_series(1, 5) i;
        """)
        result = cli("sweep", database_url=empty_database, SWEEP_BATCH_SIZE="10")
        assert result.returncode == 0, result.stderr
        assert "chart_cache: deleted 25 expired row(s) in 3 batch(es)" in result.stdout
        assert "sessions: deleted 13 expired row(s) in 2 batch(es)" in result.stdout
        assert "verification_tokens: deleted 4 expired row(s) in 1 batch(es)" in result.stdout
        assert await conn.fetchval("SELECT count(*) FROM chart_cache") == 5
        assert {r["id"] for r in await conn.fetch("SELECT id FROM sessions")} == {"s14", "s15"}
        assert await conn.fetchval("SELECT array_agg(token ORDER BY token) FROM verification_tokens") == ["vt-5"]
    finally:
        await conn.close()


async def test_stripe_replay_applies_a_file_like_the_webhook(empty_database, tmp_path):
    migrate.apply(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("INSERT INTO users (id, email) VALUES ('u1', 'u1@example.com')")
        lines = [
            encode(event("checkout.session.completed",
                         {"id": "cs_1", "client_reference_id": "u1", "customer": "cus_1", "subscription": "sub_1"},
                         100, "evt_1")),
            encode(event("customer.subscription.updated",
                         {"id": "sub_1", "customer": "cus_1", "status": "active", "cancel_at_period_end": False,
                          "current_period_end": 1800000000, "items": {"data": [{"price": {"id": "price_1"}}]}},
                         200, "evt_2")),
        ]
        file = tmp_path / "events.jsonl"
        file.write_bytes(b"\n".join(lines + lines) + b"\n")  # every event twice: duplicates change nothing
        result = cli("stripe-replay", str(file), database_url=empty_database)
        assert result.returncode == 0, result.stderr
        assert "2 applied" in result.stdout and "2 duplicate" in result.stdout
        row = await conn.fetchrow('SELECT status, "stripePriceId", "stripeCustomerId" FROM subscriptions')
        assert tuple(row) == ("ACTIVE", "price_1", "cus_1")
        result = cli("stripe-replay", str(tmp_path / "missing.jsonl"), database_url=empty_database)
        assert result.returncode == 1 and "no such file" in result.stderr
    finally:
        await conn.close()
