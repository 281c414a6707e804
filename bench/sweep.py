"""Sweep of 1,000,000 expired chart rows (issue 4): rows/s, the longest single transaction, and live
chart reads answering meanwhile.

    .venv/bin/python bench/sweep.py [--rows 1000000] [--batch 5000]

Creates its own database (aw_bench_sweep_*) on DATABASE_URL's server (default the local one) and drops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres")

import asyncpg  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from service import migrate  # noqa: E402
from service.app import create_app  # noqa: E402
from service.data.charts import sweep_expired  # noqa: E402
from service.deps import DEPS  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.databases import create_database, drop_database  # noqa: E402

TOKEN = {"Authorization": "Bearer test-read-token"}


async def main(rows: int, batch: int) -> dict:
    url = await create_database("aw_bench_sweep")
    try:
        await asyncio.to_thread(migrate.apply, url)
        conn = await asyncpg.connect(url)
        started = time.perf_counter()
        await conn.execute(f"""
            INSERT INTO chart_cache (id, "userId", "chartType", "chartData", "expiresAt")
            SELECT 'old' || i, 'u' || (i % 50000), 'TROPICAL', '{{"planets": [1, 2, 3]}}',
                   (now() AT TIME ZONE 'UTC') - (i % 1000) * interval '1 second' - interval '1 minute'
            FROM generate_series(1, {rows}) i""")
        await conn.execute("""
            INSERT INTO chart_cache (id, "userId", "chartType", "chartData", "expiresAt")
            SELECT 'live' || i, 'live-user-' || i, 'DRACONIC', '{"live": true}',
                   (now() AT TIME ZONE 'UTC') + interval '1 day'
            FROM generate_series(1, 1000) i""")
        await conn.execute("ANALYZE chart_cache")
        seeded_in = time.perf_counter() - started
        await conn.close()

        settings = make_settings(url, None, cache_enabled=False, sweep_batch_size=batch, pool_max_size=6)
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        deps = client.server.app[DEPS]
        latencies, failures = [], 0
        done = asyncio.Event()

        async def live_reads():
            nonlocal failures
            i = 0
            while not done.is_set():
                i += 1
                t = time.perf_counter()
                r = await client.get(f"/v1/charts?userId=live-user-{i % 1000 + 1}&chartType=draconic", headers=TOKEN)
                latencies.append(time.perf_counter() - t)
                if r.status != 200:
                    failures += 1

        readers = [asyncio.create_task(live_reads()) for _ in range(4)]
        t = time.perf_counter()
        result = await sweep_expired(deps, batch)
        elapsed = time.perf_counter() - t
        done.set()
        await asyncio.gather(*readers)
        await client.close()
        latencies.sort()
        return {
            "rows_expired": rows, "batch_size": batch, "seeded_in_s": round(seeded_in, 1),
            "deleted": result.count, "batches": result.batches, "seconds": round(elapsed, 2),
            "rows_per_second": round(result.count / elapsed), "longest_batch_transaction_ms": result.longestBatchMs,
            "live_reads_during_sweep": len(latencies), "live_read_failures": failures,
            "live_read_p50_ms": round(statistics.median(latencies) * 1000, 2),
            "live_read_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        }
    finally:
        await drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.rows, args.batch)), indent=2))
