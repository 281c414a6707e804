"""backup/restore as ops run them: no password on a command line, 0600 dumps, progress, grants kept,
pg_dump's errors once and clean; stripe-replay is all-or-nothing on a malformed file."""

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from service import backups, migrate
from service.commands import _pg_tool
from tests.databases import create_database, drop_database, server_admin_url
from tests.stripe_helpers import encode, event
from tests.test_commands import cli, fill

PASSWORD = "pw-" + uuid.uuid4().hex


@pytest.fixture
async def reader_with_password(empty_database):
    """A role with a password that may read everything (pg_read_all_data), and its URL."""
    role = f"aw_bk_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_admin_url())
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_read_all_data")
    finally:
        await admin.close()
    parts = urlsplit(empty_database)
    yield role, urlunsplit(parts._replace(netloc=f"{role}:{PASSWORD}@{parts.hostname}:{parts.port}"))
    admin = await asyncpg.connect(empty_database)
    try:
        await admin.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
    finally:
        await admin.close()
    admin = await asyncpg.connect(server_admin_url())
    try:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
    finally:
        await admin.close()


def spy(tmp_path: Path, tool: str) -> Path:
    """The real tool, behind a script that records the command line and PGPASSWORD it was given."""
    script = tmp_path / f"spy-{tool}"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" > "{tmp_path}/argv"\n'
                      f'printf "%s" "$PGPASSWORD" > "{tmp_path}/pgpassword"\nexec "{_pg_tool(tool)}" "$@"\n')
    script.chmod(0o755)
    return script


async def test_backup_keeps_the_password_off_command_lines_writes_0600_and_shows_progress(
        empty_database, reader_with_password, tmp_path, capsys):
    migrate.apply(empty_database)
    await fill(empty_database)
    _role, url = reader_with_password
    out = tmp_path / "db.dump"
    os.umask(0o022)  # a usual umask: the dump must still not be readable by others
    backups.backup(str(spy(tmp_path, "pg_dump")), url, str(out))
    assert PASSWORD not in (tmp_path / "argv").read_text()
    assert (tmp_path / "pgpassword").read_text() == PASSWORD
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.partial"))
    err = capsys.readouterr().err
    assert "dumping public.users (" in err and "dumping public.sessions (" in err, err


async def test_restore_keeps_the_grants_or_leaves_them_out(empty_database, reader_with_password, tmp_path):
    migrate.apply(empty_database)
    role, _url = reader_with_password
    conn = await asyncpg.connect(empty_database)
    await conn.execute(f"GRANT SELECT ON users TO {role}")
    await conn.close()
    dump = tmp_path / "db.dump"
    backups.backup(_pg_tool("pg_dump"), empty_database, str(dump))
    for flags, expected in (([], True), (["--no-privileges"], False)):
        target = await create_database()
        try:
            if flags:  # the command line once, the function once
                result = cli("restore", str(dump), *flags, database_url=target)
                assert result.returncode == 0, result.stderr
                assert "restoring public.users (" in result.stderr
            else:
                backups.restore(_pg_tool("pg_restore"), target, str(dump))
            conn = await asyncpg.connect(target)
            try:
                granted = await conn.fetchval(
                    "SELECT count(*) > 0 FROM information_schema.role_table_grants "
                    "WHERE table_name = 'users' AND grantee = $1", role)
                assert granted is expected, flags
            finally:
                await conn.close()
        finally:
            await drop_database(target)


def test_a_pg_dump_error_is_one_clean_line(tmp_path):
    parts = urlsplit(server_admin_url())
    missing = urlunsplit(parts._replace(path="/aw_test_no_such_database"))
    result = subprocess.run([sys.executable, "-m", "service", "backup", "--out", str(tmp_path / "x.dump")],
                            capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent,
                            env={**os.environ, "DATABASE_URL": missing})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: pg_dump: "), result.stderr
    assert 'database "aw_test_no_such_database" does not exist' in lines[0]
    assert not list(tmp_path.iterdir()), "no partial dump is left behind"


async def test_stripe_replay_of_a_file_with_a_bad_line_applies_nothing(empty_database, tmp_path):
    migrate.apply(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("INSERT INTO users (id, email) VALUES ('u1', 'u1@example.com')")
        good = encode(event("checkout.session.completed",
                            {"id": "cs_1", "client_reference_id": "u1", "customer": "cus_1", "subscription": "sub_1"},
                            100, "evt_1"))
        file = tmp_path / "events.jsonl"
        file.write_bytes(good + b"\n" + b'{"id": "evt_2", "type": \n' + good + b"\n")
        result = cli("stripe-replay", str(file), database_url=empty_database)
        assert result.returncode == 1
        assert f"{file}:2: not a Stripe event" in result.stderr and "nothing was applied" in result.stderr
        assert await conn.fetchval("SELECT count(*) FROM stripe_events") == 0
        assert await conn.fetchval("SELECT count(*) FROM subscriptions") == 0
    finally:
        await conn.close()
