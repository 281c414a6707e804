"""Full-size outage runs (issue 9): PostgreSQL stopped for 10 s, Redis killed for 10 s, both under load.

    .venv/bin/python bench/outage.py [--seconds 10]

Uses a private PostgreSQL cluster and a private redis-server (never the machine's shared ones) and the
same scenarios as tests/test_reliability.py, at full size. Prints the figures bench/RESULTS.md records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from tests.conftest import make_settings  # noqa: E402
from tests.outage import check_writes, run_outage, run_redis_outage  # noqa: E402
from tests.pg_cluster import Cluster  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402


async def main(seconds: float) -> dict:
    clients = []

    async def client_factory(app):
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    results = {}
    cluster = Cluster().initdb().start()
    try:
        tally = await run_outage(client_factory, cluster, None, make_settings, outage_seconds=seconds,
                                 before=2, after=5, writers=8, readers=8)
        writes = await check_writes(cluster.url("outage"), tally)
        results["database_outage"] = {
            "outage_seconds": seconds, "requests_sent": tally.sent, "answered_by_status": tally.by_status,
            "slowest_answer_seconds": round(tally.slowest, 3), "503_without_retry_after": tally.missing_retry_after,
            "cached_read_failures": tally.cached_read_failures, **writes,
        }
        redis = RedisServer()
        await redis.start()
        try:
            rt = await run_redis_outage(client_factory, redis, cluster.url("outage"), make_settings,
                                        outage_seconds=seconds, before=2, after=5, readers=16)
        finally:
            redis.kill()
        results["redis_outage"] = {
            "outage_seconds": seconds, "requests_sent": rt.sent, "answered_by_status": rt.by_status,
            "cache_errors": rt.errors, "hits_before_stop": rt.hits_before_stop,
            "hits_at_restart": rt.hits_at_restart, "hits_at_end": rt.hits_at_end,
        }
    finally:
        for client in clients:
            await client.close()
        cluster.destroy()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.seconds)), indent=2))
