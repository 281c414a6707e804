"""Migrations that are safe to retry: a real long transaction held open while `migrate` runs, leftover
INVALID indexes, one-line failures with a hint, checksums and drift, production guards, unlock."""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from service import MIGRATIONS_DIR, migrate
from tests.test_migrations import build_with_prisma_ddl

ROOT = Path(__file__).resolve().parent.parent
# Short waits so a blocked step gives up within seconds here (production defaults are longer).
FAST = {"MIGRATE_LOCK_WAIT": "3", "MIGRATE_STEP_LOCK_TIMEOUT_MS": "300"}


def cli(args, database_url, cwd=ROOT, **env):
    return subprocess.run(
        [sys.executable, "-m", "service", "migrate", *args],
        capture_output=True, text=True, cwd=cwd, timeout=180,
        env={**os.environ, "DATABASE_URL": database_url, **FAST, **env},
    )


async def acli(args, database_url, **env):
    return await asyncio.to_thread(cli, args, database_url, **env)


def forward_ids():
    return sorted(p.name[:-4] for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql"))


def assert_one_line_error(result, *needles):
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert len(lines) <= 2 and all(line.startswith(("error: ", "hint: ")) for line in lines), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


async def index_state(conn, name):
    return await conn.fetchval(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", f'"{name}"'
    )


async def leave_invalid_index(conn, name):
    """What an interrupted concurrent build leaves behind: an INVALID index of that name."""
    await conn.execute("INSERT INTO users (id, email, name) VALUES ('a', 'a@x.io', 'same'), ('b', 'b@x.io', 'same')")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(f'CREATE UNIQUE INDEX CONCURRENTLY "{name}" ON users (name)')
    assert await index_state(conn, name) is False


async def migrated_up_to(url, last_id):
    """Apply everything, then roll back what comes after `last_id`."""
    migrate.apply(url)
    later = [m for m in forward_ids() if m > last_id]
    if later:
        migrate.rollback(url, count=len(later))


async def test_leftover_invalid_index_is_rebuilt_not_skipped(empty_database):
    await migrated_up_to(empty_database, "0010_stripe_events")
    conn = await asyncpg.connect(empty_database)
    try:
        await leave_invalid_index(conn, "users_createdAt_id_idx")
        result = await acli([], empty_database)
        assert result.returncode == 0, result.stderr
        assert await index_state(conn, "users_createdAt_id_idx") is True
        definition = await conn.fetchval("SELECT pg_get_indexdef(to_regclass('\"users_createdAt_id_idx\"'))")
        assert '("createdAt", id)' in definition
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def long_report(url):
    """A report with an open snapshot (REPEATABLE READ, one read done): CREATE INDEX CONCURRENTLY must
    wait for it to end. Yields the report's server pid and the coroutine function that ends it."""
    report = await asyncpg.connect(url)
    try:
        tx = report.transaction(isolation="repeatable_read")
        await tx.start()
        await report.fetchval("SELECT count(*) FROM users")
        yield report.get_server_pid(), tx.rollback
    finally:
        await report.close()


def applied_ids(url) -> set[str]:
    return {s.id for s in migrate.status(url) if s.applied}


async def test_long_report_during_concurrent_build_is_retried_then_named_and_not_recorded(empty_database):
    await migrated_up_to(empty_database, "0010_stripe_events")
    conn = await asyncpg.connect(empty_database)
    try:
        async with long_report(empty_database) as (report_pid, end_report):
            result = await acli([], empty_database)
            assert_one_line_error(result, "0011_users_created_at_index", f"pid {report_pid}",
                                  "idle in transaction", "hint: ")
            assert "0011_users_created_at_index" not in applied_ids(empty_database)
            # The give-up cannot drop the half-built index (that needs the same wait), but it is reported.
            if await index_state(conn, "users_createdAt_id_idx") is False:
                assert "users_createdAt_id_idx on users" in migrate.drift_report(empty_database).invalid_indexes
            await end_report()
            result = await acli([], empty_database)
        assert result.returncode == 0, result.stderr
        assert await index_state(conn, "users_createdAt_id_idx") is True
        assert all(s.applied for s in migrate.status(empty_database))
    finally:
        await conn.close()


async def test_a_rollback_that_builds_an_index_behind_a_long_report_never_leaves_it_invalid(empty_database):
    # 0021's rollback rebuilds 0012's index CONCURRENTLY: the same trap as a forward build.
    await migrated_up_to(empty_database, "0021_drop_users_email_lower_idx")
    conn = await asyncpg.connect(empty_database)
    try:
        async with long_report(empty_database) as (_, end_report):
            result = await acli(["rollback"], empty_database)
            assert result.returncode == 1, result.stdout
            # not unmarked over a broken index
            assert "0021_drop_users_email_lower_idx" in applied_ids(empty_database)
            await end_report()
            result = await acli(["rollback"], empty_database)
        assert result.returncode == 0, result.stderr
        assert await index_state(conn, "users_email_lower_idx") is True
        assert "0021_drop_users_email_lower_idx" not in applied_ids(empty_database)
    finally:
        await conn.close()


async def test_trigger_migration_behind_a_long_writer_gives_up_in_one_line_then_succeeds(empty_database):
    await migrated_up_to(empty_database, "0008_chart_cache")
    writer = await asyncpg.connect(empty_database)
    other = await asyncpg.connect(empty_database)
    try:
        tx = writer.transaction()
        await tx.start()
        await writer.execute("INSERT INTO users (id, email, \"updatedAt\") VALUES ('w', 'w@x.io', now())")
        task = asyncio.create_task(acli([], empty_database))
        # Meanwhile other writers are never queued behind the migration for longer than one short try.
        for n in range(10):
            await asyncio.wait_for(other.execute('INSERT INTO users (id, email, "updatedAt") VALUES ($1, $2, now())',
                                                 f"o{n}", f"o{n}@x.io"), timeout=2)
            await asyncio.sleep(0.1)
        result = await task
        assert_one_line_error(result, "0009_updated_at_triggers", f"pid {writer.get_server_pid()}",
                              "MIGRATE_LOCK_WAIT")
        assert "0009_updated_at_triggers" not in {s.id for s in migrate.status(empty_database) if s.applied}
        await tx.commit()
        result = await acli([], empty_database)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("applied ") and "0009_updated_at_triggers" in result.stdout, result.stdout
    finally:
        await writer.close()
        await other.close()


async def test_old_platform_database_gets_the_adopt_hint(empty_database):
    await build_with_prisma_ddl(empty_database)
    result = await acli([], empty_database)
    assert_one_line_error(result, 'type "Role" already exists', "migrate adopt")


@pytest.fixture
def migrations_copy(tmp_path, monkeypatch):
    """A copy of migrations/ that a test may edit; `migrate` (in this process) reads it."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for p in MIGRATIONS_DIR.glob("*.sql"):
        (folder / p.name).write_text(p.read_text())
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", folder)
    return folder


def run_main(args, database_url, monkeypatch, capsys):
    from service.__main__ import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    code = main(["migrate", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_edited_or_deleted_applied_migration_is_drift(empty_database, migrations_copy, monkeypatch, capsys):
    await asyncio.to_thread(migrate.apply, empty_database)
    code, out, _ = await asyncio.to_thread(run_main, ["status"], empty_database, monkeypatch, capsys)
    assert code == 0 and "no drift; 0 pending" in out, out
    # An applied migration edited afterwards, and another one deleted.
    edited = migrations_copy / "0010_stripe_events.rollback.sql"
    edited.write_text(edited.read_text() + "\n-- edited after it was applied\n")
    for name in ("0013_sessions_accounts_user_id_indexes.sql", "0013_sessions_accounts_user_id_indexes.rollback.sql"):
        (migrations_copy / name).unlink()
    code, out, _ = await asyncio.to_thread(run_main, ["status", "--json"], empty_database, monkeypatch, capsys)
    assert code == 3
    report = json.loads(out)
    assert report["drift"] is True
    assert report["changed"] == ["0010_stripe_events"]
    assert report["missing_on_disk"] == ["0013_sessions_accounts_user_id_indexes"]
    by_id = {m["id"]: m for m in report["migrations"]}
    assert by_id["0010_stripe_events"]["changed"] == ["rollback"]
    assert by_id["0001_enums"]["status"] == "applied" and by_id["0001_enums"]["applied_at"]
    # `migrate` refuses to run on drift, naming it, unless told to go ahead.
    code, _, err = await asyncio.to_thread(run_main, [], empty_database, monkeypatch, capsys)
    assert code == 1 and "0010_stripe_events (rollback)" in err and "--allow-drift" in err, err
    code, out, _ = await asyncio.to_thread(run_main, ["--allow-drift"], empty_database, monkeypatch, capsys)
    assert code == 0 and "up to date" in out


async def test_rollback_without_its_rollback_file_or_with_an_edited_one_refuses(
        empty_database, migrations_copy, monkeypatch, capsys):
    await asyncio.to_thread(migrate.apply, empty_database)
    newest = [m.id for m in migrate.status(empty_database) if m.applied][-1]
    undo = migrations_copy / f"{newest}.rollback.sql"
    original = undo.read_text()
    undo.unlink()  # yoyo alone would "roll back" nothing and unmark the migration
    code, _, err = await asyncio.to_thread(run_main, ["rollback"], empty_database, monkeypatch, capsys)
    assert code == 1 and f"{newest} has no rollback file" in err, err
    undo.write_text(original + "\n-- edited after it was applied\n")
    code, _, err = await asyncio.to_thread(run_main, ["rollback"], empty_database, monkeypatch, capsys)
    assert code == 1 and f"the rollback of {newest} changed" in err, err
    assert [m.id for m in migrate.status(empty_database) if m.applied][-1] == newest  # still applied
    undo.write_text(original)
    code, out, _ = await asyncio.to_thread(run_main, ["rollback"], empty_database, monkeypatch, capsys)
    assert code == 0 and newest in out


async def test_status_lists_pending_and_invalid_indexes(empty_database):
    await migrated_up_to(empty_database, "0010_stripe_events")
    conn = await asyncpg.connect(empty_database)
    try:
        await leave_invalid_index(conn, "leftover_idx")
    finally:
        await conn.close()
    result = await acli(["list"], empty_database)
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("applied ") and line.endswith("0002_users") for line in lines), lines
    assert any(line.startswith("pending ") and line.endswith("0011_users_created_at_index") for line in lines)
    assert "INVALID index leftover_idx on users" in lines


async def test_dry_run_prints_the_sql_and_changes_nothing(empty_database):
    result = await acli(["--dry-run"], empty_database)
    assert result.returncode == 0, result.stderr
    assert "-- ===== 0001_enums =====" in result.stdout
    assert 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_createdAt_id_idx"' in result.stdout
    assert not any(s.applied for s in migrate.status(empty_database))
    await migrated_up_to(empty_database, "0013_sessions_accounts_user_id_indexes")
    result = await acli(["rollback", "--count", "2", "--dry-run"], empty_database)
    assert result.returncode == 0, result.stderr
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "accounts_userId_idx"' in result.stdout
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "users_email_lower_idx"' in result.stdout
    assert "DROP TABLE" not in result.stdout
    assert len([s for s in migrate.status(empty_database) if s.applied]) == 13


async def test_rollback_in_production_needs_the_flag_and_names_what_it_drops(empty_database):
    migrate.apply(empty_database)
    conn = await asyncpg.connect(empty_database)
    await conn.execute("INSERT INTO users (id, email) VALUES ('keep', 'keep@x.io')")
    result = await acli(["rollback", "--count", "99"], empty_database, ENVIRONMENT="production")
    assert_one_line_error(result, "refusing to rollback in production", 'table "users"', 'type "Role"',
                          "--confirm-production")
    assert all(s.applied for s in migrate.status(empty_database))
    assert await conn.fetchval("SELECT count(*) FROM users") == 1
    await conn.close()
    result = await acli(["reset", "--yes"], empty_database, ENVIRONMENT="production")
    assert_one_line_error(result, "refusing to reset in production", 'table "users"')
    result = await acli(["rollback", "--count", "1", "--confirm-production"], empty_database,
                        ENVIRONMENT="production")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"rolled back 1 migration(s): {forward_ids()[-1]}"), result.stdout


async def test_killed_migrate_leaves_a_lock_that_unlock_clears_but_not_while_it_lives(empty_database):
    await migrated_up_to(empty_database, "0008_chart_cache")
    writer = await asyncpg.connect(empty_database)
    tx = writer.transaction()
    await tx.start()
    await writer.execute('INSERT INTO users (id, email, "updatedAt") VALUES (\'w\', \'w@x.io\', now())')
    holder = subprocess.Popen(
        [sys.executable, "-m", "service", "migrate"], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": empty_database, "MIGRATE_LOCK_WAIT": "120"},
    )
    try:
        for _ in range(100):
            if await writer.fetchval("SELECT count(*) FROM yoyo_lock"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the migrate never took its lock")
        result = await acli(["unlock"], empty_database)
        assert_one_line_error(result, "refusing to unlock", f"aw-migrate {holder.pid}@")
        holder.kill()
        holder.wait(timeout=10)
        # Its connections close with it; wait until the server has noticed.
        for _ in range(50):
            if not await writer.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
                                         f"aw-migrate {holder.pid}@%"):
                break
            await asyncio.sleep(0.1)
        with pytest.raises(migrate.MigrateError) as failure:
            await asyncio.to_thread(migrate.apply, empty_database, 1)
        assert f"pid {holder.pid}" in str(failure.value) and "migrate unlock" in failure.value.hint
        assert f"removed the lock of pid {holder.pid}" in await asyncio.to_thread(migrate.unlock, empty_database)
        await tx.rollback()
        assert "0009_updated_at_triggers" in await asyncio.to_thread(migrate.apply, empty_database)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
        await writer.close()


class Killed(BaseException):
    """Stands for the process dying (SIGKILL, a lost connection) at an exact point: not an Exception,
    so nothing on the way out may treat it as a handled error."""


@pytest.mark.parametrize("direction", ["apply", "rollback"])
async def test_a_migrate_killed_between_the_change_and_its_record_can_simply_be_run_again(
        empty_database, monkeypatch, direction):
    """A transactional migration and its record (yoyo's mark, the checksum ledger) commit together: a
    deploy killed after the change but before the record used to leave 0040's table in place, unrecorded,
    and every later `migrate` failed with `relation "authenticators" already exists`."""
    target = "0040_authenticators"
    if direction == "apply":
        await migrated_up_to(empty_database, "0034_autovacuum_settings")
    else:
        await asyncio.to_thread(migrate.apply, empty_database)
        await asyncio.to_thread(migrate.rollback, empty_database, count=1)  # 0050 off: 0040 is next
    real = migrate.ledger.forget if direction == "rollback" else migrate.ledger.record

    def killed_after(cursor_execute, migration_id, *args, **kwargs):
        real(cursor_execute, migration_id, *args, **kwargs)
        if migration_id == target:
            raise Killed()

    monkeypatch.setattr(migrate.ledger, "forget" if direction == "rollback" else "record", killed_after)
    with pytest.raises(Killed):
        if direction == "apply":
            await asyncio.to_thread(migrate.apply, empty_database)
        else:
            await asyncio.to_thread(migrate.rollback, empty_database, count=1)
    monkeypatch.setattr(migrate.ledger, "forget" if direction == "rollback" else "record", real)

    conn = await asyncpg.connect(empty_database)
    try:
        table = await conn.fetchval("SELECT to_regclass('authenticators')::text")
    finally:
        await conn.close()
    # Nothing of the killed run stays: the table is as the recorded state says.
    assert (table is None) == (direction == "apply")
    if direction == "apply":
        await asyncio.to_thread(migrate.apply, empty_database)  # run again: applies 0040 cleanly
        assert target in applied_ids(empty_database)
    else:
        await asyncio.to_thread(migrate.rollback, empty_database, count=1)
        assert target not in applied_ids(empty_database)
    assert not [m for m in (await asyncio.to_thread(migrate.drift_report, empty_database)).migrations if m.changed]


async def test_dry_run_lists_what_apply_would_run_and_names_what_waits_for_an_extension(
        empty_database, migrations_copy, monkeypatch, capsys):
    """A migration needing an extension the server cannot install (the embedded PostgreSQL has no
    contrib: pg_trgm) is left pending by `apply`; the dry run must not claim it would run it."""
    (migrations_copy / "0099_needs_missing_extension.sql").write_text(
        "-- requires-extension: aw_no_such_extension\nCREATE EXTENSION aw_no_such_extension;\n")
    (migrations_copy / "0099_needs_missing_extension.rollback.sql").write_text(
        "DROP EXTENSION aw_no_such_extension;\n")
    code, out, _ = await asyncio.to_thread(run_main, ["--dry-run"], empty_database, monkeypatch, capsys)
    assert code == 0
    assert "-- ===== 0099_needs_missing_extension =====" not in out
    assert "0099_needs_missing_extension waits for extension aw_no_such_extension" in out
    await asyncio.to_thread(migrate.apply, empty_database)
    assert "0099_needs_missing_extension" not in applied_ids(empty_database)
    code, out, _ = await asyncio.to_thread(run_main, ["--dry-run"], empty_database, monkeypatch, capsys)
    assert "nothing would run" in out and "0099_needs_missing_extension waits" in out


async def test_rollback_dry_run_names_what_rollback_then_undoes(empty_database):
    """On an upgraded database a migration numbered early is applied late (this release's 0017 after
    0050): the dry run listed by applied time while yoyo rolls back in migration order."""
    await asyncio.to_thread(migrate.apply, empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("UPDATE _yoyo_migration SET applied_at_utc = applied_at_utc + interval '1 hour' "
                           "WHERE migration_id = '0017_stripe_lock_and_read'")
    finally:
        await conn.close()
    shown = [i for i, _ in await asyncio.to_thread(migrate.rollback_sql, empty_database, 2)]
    undone = await asyncio.to_thread(migrate.rollback, empty_database, count=2)
    assert shown == undone
