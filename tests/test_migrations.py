"""The hand-written migrations against a real PostgreSQL: catalog, constraints, adopt, rollback, lock."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from service import MIGRATIONS_DIR, migrate
from service.catalog import SEED_ENUMS, SEED_TABLES, describe_schema

PRISMA_DDL = Path(__file__).parent / "fixtures" / "prisma_seed.sql"
ROOT = Path(__file__).resolve().parent.parent
SERVICE_OWNED_INDEXES = {"users.users_createdAt_id_idx", "users.users_email_lower_key",
                         "sessions.sessions_userId_idx", "accounts.accounts_userId_idx",
                         # issue 15: search, list and expiry indexes (0031-0033)
                         "users.users_email_trgm_idx", "users.users_name_trgm_idx", "users.users_role_createdAt_id_idx",
                         "chart_cache.chart_cache_createdAt_id_idx", "subscriptions.subscriptions_createdAt_id_idx",
                         "subscriptions.subscriptions_status_createdAt_id_idx",
                         "subscriptions.subscriptions_currentPeriodEnd_idx", "sessions.sessions_expires_idx",
                         "verification_tokens.verification_tokens_expires_idx",
                         "users.users_email_lower_pattern_idx",  # issue 15: e-mail prefix searches (0035)
                         "subscriptions.cancelAt"}  # issue 12: a nullable service-owned column (0014)


async def facts(url, tables=SEED_TABLES, enums=SEED_ENUMS, with_triggers=False):
    conn = await asyncpg.connect(url)
    try:
        return await describe_schema(conn, "public", tables, enums, with_triggers)
    finally:
        await conn.close()


async def build_with_prisma_ddl(url):
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(PRISMA_DDL.read_text())
    finally:
        await conn.close()


async def test_migrated_schema_equals_prisma_schema(empty_database, tmp_path):
    from tests.databases import create_database, drop_database

    migrate.apply(empty_database)
    prisma_db = await create_database()
    try:
        await build_with_prisma_ddl(prisma_db)
        ours, theirs = await facts(empty_database), await facts(prisma_db)
        assert theirs <= ours, sorted(theirs - ours)
        # The only extras allowed are the service's own indexes (migrations after the seed's eight).
        names = {fact.removeprefix("unique ").split()[1] for fact in ours - theirs}
        assert names <= SERVICE_OWNED_INDEXES, sorted(ours - theirs)
        # A few facts spelled out, so a reader sees what the comparison covers.
        assert "enum Role (USER, ADMIN)" in ours
        assert "enum ChartType (TROPICAL, DRACONIC, HORARY, SYNASTRY, PROGRESSED, SOLAR_RETURN)" in ours
        assert "column users.role \"Role\" NOT NULL DEFAULT 'USER'::\"Role\"" in ours
        assert "column users.createdAt timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP" in ours
        assert "unique index accounts.accounts_provider_providerAccountId_key USING btree (provider, \"providerAccountId\")" in ours
        assert (
            'constraint accounts.accounts_userId_fkey FOREIGN KEY ("userId") REFERENCES users(id) '
            "ON UPDATE CASCADE ON DELETE CASCADE" in ours
        )
        assert "index chart_cache.chart_cache_userId_chartType_idx USING btree (\"userId\", \"chartType\")" in ours
    finally:
        await drop_database(prisma_db)


async def test_apply_rollback_apply_leaves_the_same_catalog(empty_database):
    migrate.apply(empty_database)
    first = await facts(empty_database, tables=None, enums=None, with_triggers=True)
    undone = migrate.rollback(empty_database, count=100)
    assert len(undone) == len([p for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")])
    leftover = await facts(empty_database, tables=None, enums=None, with_triggers=True)
    assert not [f for f in leftover if not any(t in f for t in migrate.BOOKKEEPING_TABLES)], leftover
    migrate.apply(empty_database)
    again = await facts(empty_database, tables=None, enums=None, with_triggers=True)
    assert first == again


async def test_rollback_with_nothing_applied_says_so(empty_database):
    assert migrate.rollback(empty_database, count=1) == []
    result = run_cli(["migrate", "rollback"], empty_database)
    assert result.returncode == 0
    assert "nothing to roll back" in result.stdout


@pytest.fixture
async def seeded(empty_database):
    migrate.apply(empty_database)
    conn = await asyncpg.connect(empty_database)
    yield conn
    await conn.close()


async def add_user(conn, user_id, email):
    await conn.execute('INSERT INTO users (id, email) VALUES ($1, $2)', user_id, email)


async def test_constraints_do_their_job(seeded):
    conn = seeded
    await add_user(conn, "u1", "a@example.com")
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await add_user(conn, "u2", "a@example.com")
    assert err.value.constraint_name == "users_email_key"

    await conn.execute(
        'INSERT INTO accounts (id, "userId", type, provider, "providerAccountId") VALUES ($1, $2, $3, $4, $5)',
        "a1", "u1", "oauth", "github", "42",
    )
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await conn.execute(
            'INSERT INTO accounts (id, "userId", type, provider, "providerAccountId") VALUES ($1, $2, $3, $4, $5)',
            "a2", "u1", "oauth", "github", "42",
        )
    assert err.value.constraint_name == "accounts_provider_providerAccountId_key"

    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        await conn.execute("INSERT INTO users (id, email, role) VALUES ('u9', 'z@example.com', 'ROOT')")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(
            "INSERT INTO sessions (id, \"sessionToken\", \"userId\", expires) VALUES ('s0', 't0', 'nobody', now())"
        )


async def test_deleting_a_user_cascades_but_keeps_chart_cache(seeded):
    conn = seeded
    await add_user(conn, "u1", "a@example.com")
    await conn.execute(
        'INSERT INTO accounts (id, "userId", type, provider, "providerAccountId") VALUES (\'a1\', \'u1\', \'oauth\', \'github\', \'1\')'
    )
    await conn.execute(
        'INSERT INTO sessions (id, "sessionToken", "userId", expires) VALUES (\'s1\', \'tok\', \'u1\', now())'
    )
    await conn.execute('INSERT INTO subscriptions (id, "userId") VALUES (\'sub1\', \'u1\')')
    await conn.execute(
        'INSERT INTO natal_data (id, "userId", "birthDate", location) VALUES (\'n1\', \'u1\', now(), \'Paris\')'
    )
    await conn.execute(
        'INSERT INTO chart_cache (id, "userId", "chartType", "chartData", "expiresAt") '
        "VALUES ('c1', 'u1', 'TROPICAL', '{}', now())"
    )
    await conn.execute("DELETE FROM users WHERE id = 'u1'")
    for table in ("accounts", "sessions", "subscriptions", "natal_data"):
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    # No foreign key on chart_cache (the seed's contract); the service's delete_user removes them.
    assert await conn.fetchval("SELECT count(*) FROM chart_cache") == 1


async def test_updated_at_is_set_on_insert_and_moves_forward_on_update(seeded):
    conn = seeded
    await add_user(conn, "u1", "a@example.com")
    created = await conn.fetchval('SELECT "updatedAt" FROM users WHERE id = \'u1\'')
    assert created is not None
    # A writer that sets an old value by hand cannot move it backwards.
    await conn.execute('UPDATE users SET name = \'x\', "updatedAt" = \'2000-01-01\' WHERE id = \'u1\'')
    updated = await conn.fetchval('SELECT "updatedAt" FROM users WHERE id = \'u1\'')
    assert updated >= created


async def test_adopt_a_prisma_built_database(empty_database):
    await build_with_prisma_ddl(empty_database)
    conn = await asyncpg.connect(empty_database)
    await conn.execute("INSERT INTO users (id, email, \"updatedAt\") VALUES ('old', 'old@example.com', now())")
    await conn.close()
    applied = await asyncio.to_thread(migrate.adopt, empty_database)
    assert applied == [m for m in sorted(p.name[:-4] for p in MIGRATIONS_DIR.glob("*.sql")
                                          if not p.name.endswith(".rollback.sql"))
                       if m not in migrate.SEED_MIGRATIONS]
    assert all(item.applied for item in migrate.status(empty_database))
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("SELECT email FROM users WHERE id = 'old'") == "old@example.com"
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'adopt_check'") == 0
    finally:
        await conn.close()


async def test_adopt_refuses_a_differing_database_and_changes_nothing(empty_database):
    await build_with_prisma_ddl(empty_database)
    conn = await asyncpg.connect(empty_database)
    await conn.execute("ALTER TABLE users ALTER COLUMN name SET NOT NULL")
    await conn.close()
    with pytest.raises(migrate.MigrateError) as err:
        await asyncio.to_thread(migrate.adopt, empty_database)
    assert "missing:    column users.name text" in str(err.value)
    assert "unexpected: column users.name text NOT NULL" in str(err.value)
    assert not any(item.applied for item in migrate.status(empty_database))


async def test_adopt_refuses_a_database_without_the_seed_tables(empty_database):
    with pytest.raises(migrate.MigrateError) as err:
        await asyncio.to_thread(migrate.adopt, empty_database)
    assert "missing table: users" in str(err.value)


def run_cli(args, database_url, **env):
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "DATABASE_URL": database_url, **env},
    )


async def test_concurrent_migrate_runs_are_safe(empty_database):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "service", "migrate"], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "DATABASE_URL": empty_database},
        )
        for _ in range(3)
    ]
    outputs = [await asyncio.to_thread(p.communicate, timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    stdouts = sorted(out for out, _ in outputs)
    assert sum(s.startswith("applied ") for s in stdouts) == 1, stdouts
    assert sum("up to date" in s for s in stdouts) == 2, stdouts
    assert all(item.applied for item in migrate.status(empty_database))


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql://root@127.0.0.1:1/nowhere", "cannot connect to the database"),
        ("not a url", "DATABASE_URL must be a postgresql://"),
        ("mysql://root@localhost/x", "DATABASE_URL must be a postgresql://"),
    ],
)
def test_bad_database_url_is_one_clear_line(url, message):
    result = run_cli(["migrate"], url)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_reset_refuses_without_yes_and_in_production(empty_database):
    result = run_cli(["migrate", "reset"], empty_database)
    assert result.returncode == 1 and "--yes" in result.stderr
    result = run_cli(["migrate", "reset", "--yes"], empty_database, ENVIRONMENT="production")
    assert result.returncode == 1 and "production" in result.stderr
    result = run_cli(["migrate", "reset", "--yes"], empty_database)
    assert result.returncode == 0, result.stderr
    assert all(item.applied for item in migrate.status(empty_database))


def test_migrate_new_writes_the_next_numbered_pair(tmp_path, monkeypatch):
    for p in MIGRATIONS_DIR.glob("*.sql"):
        if p.name[:4] <= "0013":  # a fixed set: later branches add their own numbers
            (tmp_path / p.name).write_text(p.read_text())
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    last = max(p.name[:-4] for p in tmp_path.glob("*.sql") if not p.name.endswith(".rollback.sql"))
    forward, backward = migrate.new_migration("Add user locale!")
    number = f"{int(last[:4]) + 1:04d}"
    assert Path(forward).name == f"{number}_add_user_locale.sql"
    assert Path(backward).name == f"{number}_add_user_locale.rollback.sql"
    assert f"-- depends: {last}" in Path(forward).read_text()


def test_every_migration_has_a_rollback_and_a_header():
    forwards = [p for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")]
    assert len(forwards) >= 13
    for path in forwards:
        assert path.with_name(path.stem + ".rollback.sql").exists(), path
        assert path.read_text().startswith(f"-- {path.name[:4]} "), path


def test_a_migration_needing_a_missing_extension_stays_pending(empty_database, tmp_path, monkeypatch):
    """`-- requires-extension:` (0030/0031 need pg_trgm, which the embedded PostgreSQL lacks): the migrator
    applies everything else and leaves that file pending instead of failing the deploy."""
    for p in MIGRATIONS_DIR.glob("*.sql"):
        (tmp_path / p.name).write_text(p.read_text())
    (tmp_path / "0099_needs_missing.sql").write_text(
        "-- 0099 needs an extension no server has.\n-- requires-extension: aw_no_such_extension\n"
        "-- depends: 0034_autovacuum_settings\n\nCREATE EXTENSION aw_no_such_extension;\n")
    (tmp_path / "0099_needs_missing.rollback.sql").write_text("-- Rollback of 0099.\n")
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    applied = migrate.apply(empty_database)
    assert "0099_needs_missing" not in applied and "0034_autovacuum_settings" in applied
    trgm = asyncio.run(_extension_available(empty_database, "pg_trgm"))  # not in the embedded server
    assert ("0030_pg_trgm_extension" in applied) == trgm
    statuses = {s.id: s.applied for s in migrate.status(empty_database)}
    assert statuses["0099_needs_missing"] is False and statuses["0031_users_search_indexes"] is trgm


async def _extension_available(url: str, name: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = $1", name))
    finally:
        await conn.close()
