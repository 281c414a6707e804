"""PostgreSQL failover under load with pg_auto_failover: a planned switch, then the primary killed.

The service is given both nodes in one multi-host DATABASE_URL (target_session_attrs=read-write) and
reads prefer the standby (DATABASE_READ_URL with target_session_attrs=prefer-standby). Clients see 201,
or 503 with Retry-After while there is no primary; every acknowledged write is on the primary that is
left at the end, no create is half-applied, and the service recovers without a restart.
"""

import asyncio
import json
import os

import aiohttp
import pytest

from service import migrate
from tests.conftest import make_settings
from tests.failover_load import Load, serve_app
from tests.pg_auto_failover import Formation


@pytest.fixture(scope="module")
def formation():
    formation = Formation()
    try:
        formation.start()
        yield formation
    finally:
        formation.stop()


async def wait_writable(base: str, timeout: float = 60) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(int(timeout / 0.2)):
            async with http.get(base + "/readyz") as r:
                if r.status == 200:
                    return
            await asyncio.sleep(0.2)
    raise AssertionError("service did not recover")


def report(name: str, figures: dict) -> None:
    """bench/failover.py reads these figures (AW_FAILOVER_REPORT names a JSON lines file)."""
    path = os.environ.get("AW_FAILOVER_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"scenario": name, **figures}) + "\n")


async def test_writes_survive_a_planned_failover_and_a_killed_primary(formation):
    # The multi-host URL works for migrations too (yoyo via psycopg, libpq's own multi-host syntax).
    await asyncio.to_thread(migrate.apply, formation.url())
    read_url = formation.url().replace("target_session_attrs=read-write", "target_session_attrs=prefer-standby")
    settings = make_settings(formation.url(), None, database_read_url=read_url, cache_enabled=False,
                             connect_timeout=2.0, pool_acquire_timeout=3.0, retry_after_seconds=1)
    runner, base = await serve_app(settings)
    try:
        # 1. Planned: the monitor demotes node1 and promotes node2.
        planned = Load([base], reads_may_lag=True)
        await planned.run_while(lambda: asyncio.to_thread(formation.perform_failover), renamers=0)
        await asyncio.to_thread(formation.wait_states, {"node1": "secondary", "node2": "primary"})
        assert not planned.unexpected, planned.unexpected[:5]
        assert planned.acknowledged
        await planned.check_persisted(formation.node_url("node2"))
        report("postgres planned failover", planned.figures())

        # 2. Unplanned: node2 (now the primary) is killed; the monitor promotes node1.
        async def kill_primary():
            await asyncio.to_thread(formation.kill_node, formation.primary())
            await asyncio.to_thread(formation.wait_states, {"node1": "wait_primary"})
            await wait_writable(base)

        killed = Load([base], reads_may_lag=True)
        await killed.run_while(kill_primary, renamers=0)
        assert not killed.unexpected, killed.unexpected[:5]
        figures = killed.figures()
        assert figures["refused"] > 0, "the kill was not seen by the clients: the test proves nothing"
        await killed.check_persisted(formation.node_url("node1"))
        await planned.check_persisted(formation.node_url("node1"))
        # Recovered without restart: writes answer 201 again on the same process.
        assert [o for _, k, o in killed.events if k == "create"][-1] == "ok"
        report("postgres primary killed", figures)
    finally:
        await runner.cleanup()


async def test_a_pool_left_on_a_read_only_server_answers_503_then_finds_the_writable_one(empty_database, aiohttp_client):
    """What a pool sees when its server became a standby under it: writes fail read-only. They answer
    503 (not 500), and the pool's connections are replaced, so writes work once the server is writable."""
    import asyncpg

    from service.app import create_app
    from tests.conftest import WRITE, unique_email

    await asyncio.to_thread(migrate.apply, empty_database)
    database = empty_database.rsplit("/", 1)[1].split("?")[0]
    admin = await asyncpg.connect(empty_database)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        client = await aiohttp_client(create_app(make_settings(empty_database, None, cache_enabled=False)))
        r = await client.post("/v1/users", json={"email": unique_email()}, headers=WRITE)
        assert r.status == 503, await r.text()
        assert r.headers["Retry-After"]
        await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        r = await client.post("/v1/users", json={"email": unique_email()}, headers=WRITE)
        assert r.status == 201, await r.text()
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        await admin.close()
