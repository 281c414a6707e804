"""Three service processes on one database and one Redis, behind no load balancer but the clients:
a rename answered by one instance is what the others read at once (their near caches are invalidated
through Redis pub/sub), and killing one instance with SIGKILL under load loses nothing acknowledged."""

import asyncio
import signal
import uuid

from tests.conftest import READ_TOKEN, REDIS_PREFIX_ROOT, WRITE_TOKEN
from tests.failover_load import Load
from tests.test_deploy import start_service, wait_healthy
from tests.test_pg_failover import report


async def test_three_instances_agree_and_survive_a_sigkill(migrated_database_url, redis_url):
    prefix = f"{REDIS_PREFIX_ROOT}{uuid.uuid4().hex[:8]}:"
    instances = [start_service(migrated_database_url, redis_url, CACHE_PREFIX=prefix, RETRY_AFTER_SECONDS="1",
                               POOL_MAX_SIZE="4",
                               SERVICE_TOKENS=f"writer:{WRITE_TOKEN}:write,reader:{READ_TOKEN}:read") for _ in range(3)]
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
            except Exception:
                process.kill()
