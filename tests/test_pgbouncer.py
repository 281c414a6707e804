"""The smoke path through a real PgBouncer in transaction mode (statement_cache_size=0)."""

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from service.app import create_app
from tests.conftest import READ, WRITE, make_settings, unique_email
from tests.pg_cluster import free_port
from tests.tools import require_tool


@pytest.fixture
def pgbouncer(migrated_database_url):
    exe = require_tool("pgbouncer")
    parts = urlsplit(migrated_database_url)
    if not parts.hostname:
        pytest.skip("PgBouncer test needs a TCP DATABASE_URL")
    folder = Path(tempfile.mkdtemp(prefix="aw-pgbouncer-"))
    port = free_port()
    user = parts.username or "root"
    (folder / "users.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""
[databases]
* = host={parts.hostname} port={parts.port or 5432}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 100
; asyncpg sends these at start-up; PgBouncer must not refuse the connection over them
ignore_startup_parameters = extra_float_digits,statement_timeout
""")
    command = [exe, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        shutil.chown(folder, "postgres")
        for f in folder.iterdir():
            shutil.chown(f, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}"))
    process.terminate()
    process.wait(10)
    shutil.rmtree(folder, ignore_errors=True)


async def test_smoke_path_through_pgbouncer_in_transaction_mode(aiohttp_client, pgbouncer, redis_url):
    settings = make_settings(pgbouncer, redis_url, statement_cache_size=0, pool_max_size=8)
    client = await aiohttp_client(create_app(settings))
    r = await client.post("/v1/users", json={"email": unique_email(), "password": "pw",
                                             "natalData": {"birthDate": "1990-01-02T03:04:05Z", "location": "Oslo"}},
                          headers=WRITE)
    assert r.status == 201, await r.text()
    user = await r.json()
    # Many concurrent requests over few server connections: statements must not leak across clients.
    answers = await asyncio.gather(*(client.get(f"/v1/users/{user['id']}?include=natalData", headers=READ)
                                     for _ in range(40)))
    assert {a.status for a in answers} == {200}
    r = await client.post("/v1/sessions", json={"sessionToken": f"tok-{user['id']}", "userId": user["id"],
                                                "expires": "2099-01-01T00:00:00Z"}, headers=WRITE)
    assert r.status == 201
    r = await client.post("/v1/sessions/lookup", json={"sessionToken": f"tok-{user['id']}"}, headers=READ)
    assert r.status == 200 and (await r.json())["user"]["id"] == user["id"]
    r = await client.get("/v1/users", params={"email": f"eq.{user['email']}"}, headers=READ)
    assert (await r.json())["pagination"]["total"] == 1
    r = await client.post(f"/v1/users/{user['id']}/verify-password", json={"password": "pw"}, headers=READ)
    assert await r.json() == {"valid": True}
    r = await client.delete(f"/v1/users/{user['id']}", headers=WRITE)
    assert r.status == 204
    r = await client.get("/readyz")
    assert r.status == 200
