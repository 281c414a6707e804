"""sql/admin/roles.sql: the service runs as the app role, which can read and write but not change the schema."""

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from service import migrate
from service.app import create_app
from service.commands import _pg_tool
from tests.conftest import READ, WRITE, make_settings, unique_email
from tests.databases import server_admin_url

ROLES_SQL = Path(__file__).resolve().parent.parent / "sql" / "admin" / "roles.sql"


def as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.split("@")[-1]
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))


@pytest.fixture
async def roles(empty_database):
    suffix = uuid.uuid4().hex[:8]
    names = {"owner_role": f"aw_owner_{suffix}", "app_role": f"aw_app_{suffix}", "readonly_role": f"aw_ro_{suffix}"}
    variables = [arg for key, value in {**names, "owner_password": "o-pw", "app_password": "a-pw",
                                        "readonly_password": "r-pw"}.items() for arg in ("-v", f"{key}={value}")]
    result = subprocess.run([_pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", *variables, "-f", str(ROLES_SQL),
                             empty_database], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    yield {
        "owner": as_role(empty_database, names["owner_role"], "o-pw"),
        "app": as_role(empty_database, names["app_role"], "a-pw"),
        "readonly": as_role(empty_database, names["readonly_role"], "r-pw"),
    }
    admin = await asyncpg.connect(empty_database)
    try:
        for role in names.values():
            await admin.execute(f'DROP OWNED BY "{role}" CASCADE')
    finally:
        await admin.close()
    admin = await asyncpg.connect(server_admin_url())
    try:
        for role in names.values():
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await admin.close()


async def test_service_runs_as_the_app_role_which_cannot_run_ddl(aiohttp_client, roles):
    migrate.apply(roles["owner"])
    client = await aiohttp_client(create_app(make_settings(roles["app"], None)))
    r = await client.post("/v1/users", json={"email": unique_email(), "password": "pw"}, headers=WRITE)
    assert r.status == 201, await r.text()
    user = await r.json()
    r = await client.patch(f"/v1/users/{user['id']}", json={"name": "n"}, headers=WRITE)
    assert r.status == 200
    r = await client.get("/v1/users", headers=READ)
    assert r.status == 200
    r = await client.delete(f"/v1/users/{user['id']}", headers=WRITE)
    assert r.status == 204

    app = await asyncpg.connect(roles["app"])
    try:
        for ddl in ('CREATE TABLE intruder (x int)', 'DROP TABLE users', 'ALTER TABLE users ADD COLUMN x int',
                    'TRUNCATE users', 'CREATE INDEX i ON users (name)', 'DROP TYPE "Role"'):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(ddl)
    finally:
        await app.close()


async def test_readonly_role_can_only_read(roles):
    migrate.apply(roles["owner"])
    ro = await asyncpg.connect(roles["readonly"])
    try:
        assert await ro.fetchval("SELECT count(*) FROM users") >= 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await ro.execute("INSERT INTO users (id, email) VALUES ('x', 'x@example.com')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await ro.execute("DELETE FROM sessions")
    finally:
        await ro.close()


async def test_readonly_role_reads_reporting_views_without_any_secret(roles):
    migrate.apply(roles["owner"])
    owner = await asyncpg.connect(roles["owner"])
    try:
        await owner.execute("INSERT INTO users (id, email, password) VALUES ('u1', 'ro@example.com', 'bcrypt-hash')")
        await owner.execute('INSERT INTO sessions (id, "sessionToken", "userId", expires) VALUES (\'s1\', \'tok\', \'u1\', now())')
        await owner.execute("INSERT INTO verification_tokens (identifier, token, expires) VALUES ('ro@example.com', 'vt', now())")
        await owner.execute('INSERT INTO accounts (id, "userId", type, provider, "providerAccountId", access_token, '
                            "refresh_token, id_token) VALUES ('a1', 'u1', 'oauth', 'github', '1', 'at', 'rt', 'it')")
        await owner.execute('INSERT INTO stripe_events (id, type, created, payload) VALUES (\'evt\', \'x\', 1, \'{"secret": 1}\')')
    finally:
        await owner.close()
    ro = await asyncpg.connect(roles["readonly"])
    try:
        assert await ro.fetchval("SELECT email FROM users WHERE id = 'u1'") == "ro@example.com"
        assert await ro.fetchval("SELECT provider FROM accounts WHERE id = 'a1'") == "github"
        assert await ro.fetchval("SELECT count(*) FROM sessions") == 1
        for secret in ("SELECT password FROM users", 'SELECT "sessionToken" FROM sessions',
                       "SELECT token FROM verification_tokens", "SELECT access_token FROM accounts",
                       "SELECT refresh_token FROM accounts", "SELECT id_token FROM accounts",
                       "SELECT payload FROM stripe_events"):
            with pytest.raises(asyncpg.UndefinedColumnError):
                await ro.fetch(secret)
        for table in ("users", "sessions", "verification_tokens", "accounts", "stripe_events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await ro.fetch(f"SELECT * FROM public.{table}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await ro.execute("UPDATE users SET name = 'x'")
    finally:
        await ro.close()


async def test_app_role_has_no_hold_on_migrations_temp_tables_or_long_waits(roles):
    migrate.apply(roles["owner"])
    app = await asyncpg.connect(roles["app"])
    try:
        for statement in ("INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) "
                          "VALUES ('h', '9999_fake', now())",
                          "DELETE FROM _aw_migration_checksum", "DELETE FROM yoyo_lock",
                          "UPDATE _yoyo_migration SET migration_id = 'x'",
                          "CREATE TEMP TABLE scratch (x int)"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(statement)
        # reading is allowed: the doctor and the migration gauges run as the app role
        assert await app.fetchval("SELECT count(*) FROM _yoyo_migration") > 0
        assert await app.fetchval("SELECT count(*) FROM _aw_migration_checksum") > 0
        assert await app.fetchval("SHOW statement_timeout") == "15s"
        assert await app.fetchval("SHOW lock_timeout") == "5s"
        assert await app.fetchval("SHOW idle_in_transaction_session_timeout") == "1min"
        assert await app.fetchval("SHOW timezone") == "UTC"
    finally:
        await app.close()


def run_roles_sql(database_url, names):
    variables = [arg for key, value in {**names, "owner_password": "o-pw", "app_password": "a-pw",
                                        "readonly_password": "r-pw"}.items() for arg in ("-v", f"{key}={value}")]
    return subprocess.run([_pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", *variables, "-f", str(ROLES_SQL),
                           database_url], capture_output=True, text=True, timeout=60)


async def test_roles_sql_is_rerunnable_after_migrations_and_migrate_warns_as_the_app_role(roles, empty_database):
    migrate.apply(roles["owner"])
    names = {key: urlsplit(roles[role]).username for key, role in
             (("owner_role", "owner"), ("app_role", "app"), ("readonly_role", "readonly"))}
    result = run_roles_sql(empty_database, names)
    assert result.returncode == 0, result.stderr
    ro = await asyncpg.connect(roles["readonly"])
    try:
        assert await ro.fetchval("SELECT count(*) FROM users") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await ro.fetch("SELECT * FROM public._yoyo_migration")
    finally:
        await ro.close()
    result = subprocess.run([sys.executable, "-m", "service", "migrate"], capture_output=True, text=True,
                            timeout=120, cwd=ROLES_SQL.parents[2],
                            env={**os.environ, "DATABASE_URL": roles["app"]})
    assert f"warning: migrate is running as role '{names['app_role']}'" in result.stderr, result.stderr
    assert result.returncode == 1 and "may not take migrate's lock" in result.stderr, result.stderr
    assert "hint: run migrate as the owner role" in result.stderr
