"""What runs in production: `serve` as a process, SIGTERM, workers (the image and compose: test_docker.py)."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import unique_email
from tests.pg_cluster import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKENS = "w:deploy-write:write,r:deploy-read:read"


def start_service(database_url, redis_url, *args, **env):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port), *args], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SERVICE_TOKENS": TOKENS,
             "BCRYPT_ROUNDS": "4", "SWEEP_INTERVAL_SECONDS": "0", **env},
    )
    return process, f"http://127.0.0.1:{port}"


async def wait_healthy(base, process, timeout=30):
    async with aiohttp.ClientSession() as http:
        for _ in range(int(timeout / 0.1)):
            assert process.poll() is None, process.stderr.read()
            try:
                async with http.get(base + "/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("service did not become ready")


async def test_sigterm_under_load_finishes_in_flight_requests_and_exits_0(migrated_database_url, redis_url):
    # bcrypt at 10 rounds on one thread: 20 sign-ups are still in their handlers when SIGTERM comes
    # (password places for all 20, so none is refused: this is about draining, not rationing).
    process, base = start_service(migrated_database_url, redis_url, BCRYPT_ROUNDS="10", BCRYPT_THREADS="1",
                                  BCRYPT_QUEUE_SIZE="20", BCRYPT_CALLER_SHARE="1.0")
    try:
        await wait_healthy(base, process)
        headers = {"Authorization": "Bearer deploy-write"}
        async with aiohttp.ClientSession() as http:
            async def create():
                async with http.post(base + "/v1/users", json={"email": unique_email("term"), "password": "pw"},
                                     headers=headers) as r:
                    return r.status, (await r.json()).get("email")

            in_flight = [asyncio.create_task(create()) for _ in range(20)]
            await asyncio.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            # New connections are refused once SIGTERM has arrived...
            try:
                async with aiohttp.ClientSession() as fresh, fresh.get(base + "/healthz") as r:
                    refused = False
            except aiohttp.ClientConnectionError:
                refused = True
            assert refused
            # ...while every request already in flight completes normally.
            results = await asyncio.gather(*in_flight)
            assert {status for status, _ in results} == {201}, results
            exit_code = await asyncio.to_thread(process.wait, 30)
            assert exit_code == 0, process.stderr.read()
        import asyncpg

        conn = await asyncpg.connect(migrated_database_url)
        try:
            emails = [email for _, email in results]
            found = await conn.fetchval("SELECT count(*) FROM users WHERE email = ANY($1::text[])", emails)
        finally:
            await conn.close()
        assert found == len(results), "every request answered 201 is in the database"
    finally:
        if process.poll() is None:
            process.kill()


async def test_serve_with_two_workers_shares_the_port(migrated_database_url, redis_url):
    process, base = start_service(migrated_database_url, redis_url, "--workers", "2")
    try:
        await wait_healthy(base, process)
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/v1/users", json={"email": unique_email("w2")},
                                 headers={"Authorization": "Bearer deploy-write"}) as r:
                assert r.status == 201
                user = await r.json()
            statuses = []
            for _ in range(20):
                async with http.get(f"{base}/v1/users/{user['id']}",
                                    headers={"Authorization": "Bearer deploy-read"}) as r:
                    statuses.append(r.status)
            assert set(statuses) == {200}
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()


async def test_dev_command_serves_on_an_embedded_postgres(tmp_path):
    """bin/run's command on a machine without DATABASE_URL / REDIS_URL: embedded PostgreSQL, in-process cache."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SERVICE_TOKENS")}
    process = subprocess.Popen([sys.executable, "-m", "service", "dev"], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**env, "PORT": str(port), "DATA_DIR": str(tmp_path / "data"),
                                    "BCRYPT_ROUNDS": "4"})
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_healthy(base, process, timeout=90)
        lines = []
        while not any(line.startswith("dev token: ") for line in lines):
            lines.append(await asyncio.to_thread(process.stdout.readline))
        token = next(line for line in lines if line.startswith("dev token: ")).split()[-1]
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/v1/users", json={"email": unique_email("dev")},
                                 headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 201
            async with http.get(base + "/readyz") as r:
                assert (await r.json()) == {"status": "ok", "database": "ok"}
        assert (tmp_path / "data" / "pgdata" / "PG_VERSION").exists()  # the data stays in the project folder
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
    finally:
        if process.poll() is None:
            process.kill()
