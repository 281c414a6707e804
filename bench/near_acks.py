"""What acknowledged invalidation costs a write (issue 17): PATCH /v1/users/{id} latency, p50 and p99,
with 1 and with 3 service instances on one database and one Redis (default settings: near cache on,
CACHE_NEAR_LEASE 0.25 s). Before each rename every instance reads the user, so every near cache holds
it and every instance has a copy to drop and acknowledge; the renames go to the instances in turn.

    nice .venv/bin/python bench/near_acks.py [--writes 400] [--service-root DIR]

--service-root runs the instances from another checkout of the service, to compare with the code
before (e.g. `mkdir /tmp/base && git archive main | tar -x -C /tmp/base`). Needs DATABASE_URL (a
server where it may create and drop one database of its own) and redis-server (a Redis of its own).
Compare within one run: the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import migrate  # noqa: E402
from tests.databases import create_database, drop_database  # noqa: E402
from tests.pg_cluster import free_port  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.test_deploy import wait_healthy  # noqa: E402

WRITE = {"Authorization": "Bearer bench-write"}
TOKENS = "bench:bench-write:write"


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


async def renames(database_url: str, redis_url: str, instances: int, writes: int, service_root: Path) -> list[float]:
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    processes, bases = [], []
    try:
        for _ in range(instances):
            port = free_port()
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "service", "serve", "--port", str(port)], cwd=service_root,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(service_root), "DATABASE_URL": database_url,
                     "REDIS_URL": redis_url, "SERVICE_TOKENS": TOKENS, "BCRYPT_ROUNDS": "4",
                     "SWEEP_INTERVAL_SECONDS": "0", "LOG_LEVEL": "WARNING", "CACHE_PREFIX": prefix}))
            bases.append(f"http://127.0.0.1:{port}")
        for process, base in zip(processes, bases):
            await wait_healthy(base, process)
        await asyncio.sleep(1.0)  # subscribers connected (and registered)
        seconds = []
        async with aiohttp.ClientSession() as http:
            async with http.post(bases[0] + "/v1/users", json={"email": f"{prefix}@bench.example"},
                                 headers=WRITE) as r:
                assert r.status == 201, await r.text()
                path = "/v1/users/" + (await r.json())["id"]
            for i in range(writes + 20):  # the first 20 warm up
                for base in bases:
                    async with http.get(base + path, headers=WRITE) as r:
                        assert r.status == 200
                started = time.perf_counter()
                async with http.patch(bases[i % instances] + path, json={"name": f"v{i}"}, headers=WRITE) as r:
                    assert r.status == 200
                if i >= 20:
                    seconds.append(time.perf_counter() - started)
        return seconds
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--service-root", type=Path, default=ROOT)
    args = parser.parse_args()
    url = await create_database("aw_bench_near_acks")
    redis = RedisServer()
    await redis.start()
    try:
        await asyncio.to_thread(migrate.apply, url)
        print(f"service: {args.service_root}; load average before: {os.getloadavg()[0]:.2f}")
        print("| instances | renames | p50 ms | p99 ms | mean ms |")
        print("|---:|---:|---:|---:|---:|")
        for count in (1, 3):
            seconds = await renames(url, redis.url, count, args.writes, args.service_root.resolve())
            print(f"| {count} | {len(seconds)} | {percentile(seconds, 0.5) * 1000:.2f} | "
                  f"{percentile(seconds, 0.99) * 1000:.2f} | {sum(seconds) / len(seconds) * 1000:.2f} |", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        redis.kill()
        await drop_database(url)


if __name__ == "__main__":
    asyncio.run(main())
