"""Three service processes on one database and one Redis, behind no load balancer but the clients:
a rename answered by one instance is what the others read at once (their near caches are invalidated
through Redis pub/sub), and killing one instance with SIGKILL under load loses nothing acknowledged."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest

from tests.conftest import READ_TOKEN, REDIS_PREFIX_ROOT, WRITE_TOKEN
from tests.failover_load import Load
from tests.pg_cluster import free_port
from tests.test_deploy import ROOT, wait_healthy
from tests.test_pg_failover import report


def start_instance(database_url, redis_url, log_file, **env):
    """`python -m service serve` on a free port, its logs to a file (a pipe nobody reads fills up under
    load and then blocks the process: test_deploy's start_service is for short tests)."""
    port = free_port()
    tokens = f"writer:{WRITE_TOKEN}:write,reader:{READ_TOKEN}:read"
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(port)], cwd=ROOT, stdout=log, stderr=log,
            env={**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "BCRYPT_ROUNDS": "4",
                 "SWEEP_INTERVAL_SECONDS": "0", "SERVICE_TOKENS": tokens, **env})
    return process, f"http://127.0.0.1:{port}"


async def test_three_instances_agree_and_survive_a_sigkill(migrated_database_url, redis_url, tmp_path):
    prefix = f"{REDIS_PREFIX_ROOT}{uuid.uuid4().hex[:8]}:"
    instances = [start_instance(migrated_database_url, redis_url, tmp_path / f"instance-{i}.log",
                                CACHE_PREFIX=prefix, RETRY_AFTER_SECONDS="1", POOL_MAX_SIZE="4")
                 for i in range(3)]
    try:
        for process, base in instances:
            await wait_healthy(base, process)
        victim, victim_base = instances[2]
        load = Load([base for _, base in instances])

        async def kill_one():
            await asyncio.sleep(1.0)
            load.dead.add(victim_base)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            load.bases.remove(victim_base)  # the load balancer's health check takes it out

        await load.run_while(kill_one, creators=3, renamers=3, readers=2, warmup=1.0, settle=1.0)
        assert not load.unexpected, load.unexpected[:5]
        assert load.stale_reads == 0
        assert len(load.acknowledged) > 20
        # The killed instance was serving when it died (the test is not vacuous).
        assert any(o == "connection" for _, _, o in load.events) or victim.returncode == -signal.SIGKILL
        await load.check_persisted(migrated_database_url)
        report("one of three instances killed", load.figures())
    finally:
        for process, _ in instances:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in instances:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.parametrize("near_ttl", [0, 30], ids=["near-cache-off", "near-cache-on"])
async def test_a_write_on_one_instance_is_read_at_once_on_another(migrated_database_url, near_ttl):
    """Read on B (caching the user), rename on A, read on B as soon as A has answered; 150 times.

    Near cache off: B reads Redis, which A's invalidation changed before A answered: never stale.
    Near cache on: B's copy is dropped when A's invalidation message reaches B's subscriber. Redis
    delivers it ~0.5 ms after A's script returns, so A first waits for its own copy of the message;
    B's arrives in the same delivery pass, but not strictly before B handles the next request: a
    residual window (measured: 0-1 in 150 with the wait, 6-8 in 150 without it)."""
    import aiohttp

    from tests.conftest import READ, WRITE, make_settings, unique_email
    from tests.failover_load import serve_app
    from tests.redis_server import RedisServer
    from tests.test_redis_ha import wait_caches_ready

    # A Redis of this test's own: on the machine's shared one, busy with other tests, the race is rarer.
    server = RedisServer()
    await server.start()
    prefix = f"{REDIS_PREFIX_ROOT}{uuid.uuid4().hex[:8]}:"
    runners, bases = [], []
    try:
        for _ in range(2):
            runner, base = await serve_app(make_settings(migrated_database_url, server.url, cache_prefix=prefix,
                                                         cache_near_ttl=near_ttl))
            runners.append(runner)
            bases.append(base)
        if near_ttl:
            await wait_caches_ready(runners)
        async with aiohttp.ClientSession() as http:
            async with http.post(bases[0] + "/v1/users", json={"email": unique_email(), "name": "v0"},
                                 headers=WRITE) as r:
                user = await r.json()
            url = "/v1/users/" + user["id"]
            stale = []
            for i in range(1, 151):
                writer, reader = bases[i % 2], bases[(i + 1) % 2]
                async with http.get(reader + url, headers=READ) as r:
                    assert r.status == 200
                async with http.patch(writer + url, json={"name": f"v{i}"}, headers=WRITE) as r:
                    assert r.status == 200
                async with http.get(reader + url, headers=READ) as r:
                    seen = (await r.json())["name"]
                if seen != f"v{i}":
                    stale.append((seen, f"v{i}"))
        assert len(stale) <= (3 if near_ttl else 0), f"{len(stale)} stale reads of 150: {stale[:3]}"
    finally:
        for runner in runners:
            await runner.cleanup()
        server.kill()
