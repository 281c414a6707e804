"""Three service processes on one database and one Redis, behind no load balancer but the clients:
a rename answered by one instance is what the others read at once (their near caches are invalidated
through Redis pub/sub), and killing one instance with SIGKILL under load loses nothing acknowledged."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid

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


def stop_instances(instances) -> None:
    """SIGTERM every instance still running, then wait for each (SIGKILL after 15 s)."""
    for process, _ in instances:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process, _ in instances:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()

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
        stop_instances(instances)


async def test_a_write_on_one_instance_is_never_stale_on_the_others(migrated_database_url, tmp_path):
    """Three real instances with the DEFAULT settings (near cache on), 300 rounds: read the user on the
    two others (their near caches hold it), rename it on one, and as soon as the rename is answered
    read it on both others at once. Not one of the 1,200 reads may show an older name.

    Instance 0 is next to Redis; instances 1 and 2 are a little farther (2 ms each way, as from another
    zone), so an invalidation reaches them after it reached the writer's own subscriber. The writer
    answers only once every other instance acknowledged that it dropped its copy
    (service/cache/near_acks.py). When the writer waited for its own subscriber only, the far
    instances served the old name in most rounds written on instance 0 (and, without the delay, in
    about 1 round in 150 of a tight loop in one process)."""
    import aiohttp
    import asyncpg
    import redis.asyncio as aioredis

    from tests.conftest import READ, WRITE, unique_email
    from tests.latency_proxy import LatencyProxy
    from tests.redis_server import RedisServer

    # A Redis of this test's own: on the machine's shared one, busy with other tests, the race is rarer.
    server = RedisServer()
    await server.start()
    proxies = [LatencyProxy("127.0.0.1", server.port, delay=0.002) for _ in range(2)]
    urls = [server.url] + [f"redis://127.0.0.1:{await proxy.start()}/0" for proxy in proxies]
    prefix = f"{REDIS_PREFIX_ROOT}{uuid.uuid4().hex[:8]}:"
    instances = [start_instance(migrated_database_url, url, tmp_path / f"instance-{i}.log",
                                CACHE_PREFIX=prefix, POOL_MAX_SIZE="4") for i, url in enumerate(urls)]
    try:
        for process, base in instances:
            await wait_healthy(base, process)
        bases = [base for _, base in instances]
        async with aiohttp.ClientSession() as http:
            async def name_on(base):
                async with http.get(base + url, headers=READ) as r:
                    assert r.status == 200, await r.text()
                    return (await r.json())["name"]

            async with http.post(bases[0] + "/v1/users", json={"email": unique_email(), "name": "v0"},
                                 headers=WRITE) as r:
                assert r.status == 201
                user = await r.json()
            url = "/v1/users/" + user["id"]
            stale = []  # (name expected, name read): every read follows the answer of the last rename
            for i in range(1, 301):
                writer, readers = bases[i % 3], [b for b in bases if b != bases[i % 3]]
                seen = await asyncio.gather(*map(name_on, readers))
                stale += [(f"v{i - 1}", s) for s in seen if s != f"v{i - 1}"]
                async with http.patch(writer + url, json={"name": f"v{i}"}, headers=WRITE) as r:
                    assert r.status == 200
                seen = await asyncio.gather(*map(name_on, readers))
                stale += [(f"v{i}", s) for s in seen if s != f"v{i}"]
            assert not stale, f"{len(stale)} stale reads of 1200: {stale[:5]}"
            # Not vacuous: the readers serve from their near caches (a copy in process outlives both
            # the Redis entry and the row, which only an invalidation through Redis would drop). Tried
            # up to 3 times: a reader whose lease lapsed that moment (a stall of its event loop) reads
            # Redis instead, correctly.
            reader, served_from_near = bases[1], False
            redis_client, db = aioredis.Redis.from_url(server.url), await asyncpg.connect(migrated_database_url)
            try:
                for attempt in range(3):
                    async with http.patch(bases[0] + url, json={"name": f"probe{attempt}"}, headers=WRITE) as r:
                        assert r.status == 200
                    assert await name_on(reader) == await name_on(reader) == f"probe{attempt}"
                    await db.execute("UPDATE users SET name = 'behind the cache' WHERE id = $1", user["id"])
                    await redis_client.delete(f"{prefix}k:user:id:{user['id']}")
                    if await name_on(reader) == f"probe{attempt}":
                        served_from_near = True
                        break
            finally:
                await redis_client.aclose()
                await db.close()
            assert served_from_near
    finally:
        stop_instances(instances)
        for proxy in proxies:
            await proxy.close()
        server.kill()
