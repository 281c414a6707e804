"""sql/admin/roles.sql: the service runs as the app role, which can read and write but not change the schema."""

import subprocess
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
