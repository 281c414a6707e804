"""Production start-up: settings validated in one line each, required settings in production, an
unreachable database retried (not a crash), start and stop lines, a port in use, the embedded database
never leaked by workers, the development token kept across restarts."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.pg_cluster import free_port
from tests.test_deploy import TOKENS, start_service, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
WITHOUT_DB = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SERVICE_TOKENS")}


def run(args, timeout=60, **env):
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**WITHOUT_DB, **env})


BAD = {"PORT": "99999", "ENVIRONMENT": "prodution", "POOL_MAX_SIZE": "ten", "CACHE_ENABLED": "sometimes"}
ONE_LINE_EACH = [
    "error: CACHE_ENABLED must be true or false, got sometimes",
    "error: ENVIRONMENT must be one of development, production, staging, test, got prodution",
    "error: PORT must be 1-65535, got 99999",
    "error: POOL_MAX_SIZE must be an integer at least 1, got ten",
]


def test_bad_settings_are_one_line_each_naming_the_variable():
    for command in (["serve"], ["migrate", "status"]):
        result = run(command, **BAD)
        assert result.returncode == 1
        assert sorted(result.stderr.strip().splitlines()) == sorted(ONE_LINE_EACH), result.stderr


def test_production_requires_a_database_url_and_tokens():
    result = run(["serve"], ENVIRONMENT="production")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: DATABASE_URL is required in production")
    assert lines[1].startswith("error: SERVICE_TOKENS is required in production")
    # The embedded database is for development only, for every command.
    result = run(["migrate"], ENVIRONMENT="staging")
    assert result.returncode == 1 and "DATABASE_URL is required" in result.stderr, result.stderr


async def test_unreachable_database_at_start_is_retried_and_ready_when_it_comes(migrated_database_url, redis_url):
    # DATABASE_URL points at a port where nothing listens yet; a forwarder to the real server opens later.
    db_port = free_port()
    url = migrated_database_url.replace("127.0.0.1:5432", f"127.0.0.1:{db_port}")
    assert url != migrated_database_url
    process, base = start_service(url, redis_url)
    forwarder = None
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(base + "/healthz") as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    assert process.poll() is None, process.stderr.read()
                    await asyncio.sleep(0.1)
            async with http.get(base + "/readyz") as r:
                assert r.status == 503
            async with http.get(base + "/v1/users", headers={"Authorization": "Bearer deploy-read"}) as r:
                assert r.status == 503
            await asyncio.sleep(1.5)  # long enough for a second attempt
            forwarder = await asyncio.start_server(forward_to(5432), "127.0.0.1", db_port)
            for _ in range(150):
                async with http.get(base + "/readyz") as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("never became ready")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
        err = process.stderr.read()
        assert "database unreachable (attempt 1): [Errno 111] Connection refused" in err, err
        assert "database unreachable (attempt 2)" in err, err
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
        if forwarder:
            forwarder.close()


def forward_to(port):
    async def handle(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return handle


async def test_one_start_line_and_one_stop_line(migrated_database_url, redis_url):
    process, base = start_service(migrated_database_url, redis_url)
    try:
        await wait_healthy(base, process)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
        lines = process.stdout.read().splitlines()
        assert len(lines) == 2, lines
        start, stop = lines
        assert start.startswith(f"astrowellness-data 0.1.0 serving on {base}"), start
        assert "database 127.0.0.1:5432/" in start and "cache redis" in start, start
        assert stop.startswith("astrowellness-data stopped"), stop
    finally:
        if process.poll() is None:
            process.kill()


def test_a_port_in_use_is_one_line(migrated_database_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for workers in ("1", "2"):
            result = run(["serve", "--port", str(port), "--workers", workers], DATABASE_URL=migrated_database_url,
                         SERVICE_TOKENS=TOKENS)
            assert result.returncode == 1
            assert result.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: address already in use", \
                result.stderr


def postmaster_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_workers_on_the_embedded_database_never_leak_it(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port), "--workers", "2"], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**WITHOUT_DB, "DATA_DIR": str(tmp_path / "data"), "SERVICE_TOKENS": TOKENS, "SWEEP_INTERVAL_SECONDS": "0"},
    )
    pgdata = tmp_path / "data" / "pgdata"
    try:
        await wait_healthy(f"http://127.0.0.1:{port}", process, timeout=90)
        assert postmaster_running(pgdata)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
        for _ in range(100):
            if not postmaster_running(pgdata):
                break
            await asyncio.sleep(0.1)
        assert not postmaster_running(pgdata), "the embedded PostgreSQL outlived the service"
    finally:
        if process.poll() is None:
            process.kill()
        if postmaster_running(pgdata):  # never leave one behind, even when the test fails
            os.kill(int((pgdata / "postmaster.pid").read_text().split()[0]), signal.SIGTERM)


async def test_dev_token_is_kept_across_restarts_and_dev_takes_a_port(migrated_database_url, tmp_path):
    tokens = []
    for _ in range(2):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "dev", "--port", str(port)], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**WITHOUT_DB, "DATABASE_URL": migrated_database_url, "DATA_DIR": str(tmp_path / "data"),
                 "BCRYPT_ROUNDS": "4", "SWEEP_INTERVAL_SECONDS": "0"},
        )
        try:
            await wait_healthy(f"http://127.0.0.1:{port}", process)
            lines = []
            while not any(line.startswith("dev token: ") for line in lines):
                lines.append(await asyncio.to_thread(process.stdout.readline))
            token = next(line for line in lines if line.startswith("dev token: ")).split()[-1]
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/v1/users",
                                    headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 200
            tokens.append(token)
            process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(process.wait, 30) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert tokens[0] == tokens[1]
    saved = tmp_path / "data" / "dev-token"
    assert saved.read_text().strip() == tokens[0]
    assert saved.stat().st_mode & 0o777 == 0o600


def test_a_url_of_the_wrong_kind_is_one_line_not_a_retry_loop():
    result = run(["serve"], DATABASE_URL="mysql://root@localhost/x", SERVICE_TOKENS=TOKENS)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: DATABASE_URL must be a postgresql:// URL, got scheme 'mysql'"
