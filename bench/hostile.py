"""Hostile and careless callers (issue 14), measured against a running `serve` process.

1. verify-password p99 of one token, idle and while another token sends 100 concurrent sign-ups with
   passwords (BCRYPT_ROUNDS=12). Target: <= 2x idle, or a fast refusal (503/429), never a long wait.
2. p99 of a quiet token's reads, idle and while a noisy token floods 12 concurrent expensive lists
   (1,000-character ilike pattern, exact count). Target: <= 2x idle.
3. Redis memory (a redis-server of this run) before, during and after 100,000 random-id misses on
   GET /v1/users/{id}, /subscription and /natal-data. Target: flat (back to baseline after the
   not-found TTL; no tag sets left).

    nice .venv/bin/python bench/hostile.py [--users 50000] [--misses 100000]

Needs DATABASE_URL (a server where it may create and drop one database of its own) and redis-server.
Compare ratios within one run: the machine may be shared.
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
import asyncpg
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import migrate
from tests.databases import create_database, drop_database
from tests.pg_cluster import free_port
from tests.redis_server import RedisServer
from tests.test_deploy import wait_healthy

WRITER, READER, NOISY = "bench-writer", "bench-reader", "bench-noisy"
TOKENS = f"web:{WRITER}:write,reader:{READER}:read,noisy:{NOISY}:read"


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")


class Service:
    def __init__(self, database_url: str, redis_url: str | None, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "DATABASE_URL": database_url, "SERVICE_TOKENS": TOKENS,
                       "BCRYPT_ROUNDS": "12", "SWEEP_INTERVAL_SECONDS": "0", "LOG_LEVEL": "WARNING",
                       "CACHE_PREFIX": f"bench-{uuid.uuid4().hex[:6]}:", **env}
        environment.pop("REDIS_URL", None)
        if redis_url:
            environment["REDIS_URL"] = redis_url
        self.process = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(self.port)],
                                        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)

    async def ready(self, _http: aiohttp.ClientSession) -> None:
        await wait_healthy(self.url, self.process)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


async def timed(http, method, url, **kw) -> tuple[float, int]:
    started = time.perf_counter()
    async with http.request(method, url, **kw) as r:
        await r.read()
        return (time.perf_counter() - started) * 1000, r.status


async def password_starvation(database_url: str) -> dict:
    service = Service(database_url, None)
    async with aiohttp.ClientSession() as http:
        await service.ready(http)
        r = await http.post(service.url + "/v1/users", headers=auth(WRITER),
                            json={"email": f"verify-{uuid.uuid4().hex}@bench.dev", "password": "pw-bench"})
        user = await r.json()
        verify = service.url + f"/v1/users/{user['id']}/verify-password"
        idle = [(await timed(http, "POST", verify, headers=auth(READER), json={"password": "pw-bench"}))[0]
                for _ in range(20)]

        async def sign_up():
            return await timed(http, "POST", service.url + "/v1/users", headers=auth(WRITER),
                               json={"email": f"flood-{uuid.uuid4().hex}@bench.dev", "password": "pw"})

        async def verifies():
            out = []
            for _ in range(20):
                out.append(await timed(http, "POST", verify, headers=auth(READER), json={"password": "pw-bench"}))
            return out

        flood = [asyncio.ensure_future(sign_up()) for _ in range(100)]
        during = await verifies()
        signups = await asyncio.gather(*flood)
    service.stop()
    ok = [ms for ms, status in during if status == 200]
    refused = [ms for ms, status in during if status in (429, 503)]
    return {"idle_p99": p99(idle), "during_p99": p99(ok), "during_ok": len(ok), "during_refused": len(refused),
            "refused_p99": p99(refused),
            "signup_statuses": {s: sum(1 for _, x in signups if x == s) for s in sorted({x for _, x in signups})},
            "signup_refused_p99": p99([ms for ms, s in signups if s in (429, 503)])}


async def seed_users(database_url: str, count: int) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("""
            INSERT INTO users (id, email, name)
            SELECT 'cb' || lpad(i::text, 23, '0'), 'seed-' || i || '@bench.dev', 'Seed ' || i
            FROM generate_series(1, $1) AS i ON CONFLICT DO NOTHING""", count)
        await conn.execute("ANALYZE users")
        return [r["id"] for r in await conn.fetch("SELECT id FROM users ORDER BY random() LIMIT 200")]
    finally:
        await conn.close()


async def expensive_list_flood(database_url: str, users: int, caller_expensive: int) -> dict:
    ids = await seed_users(database_url, users)
    service = Service(database_url, None, CACHE_ENABLED="false", CALLER_EXPENSIVE=str(caller_expensive))
    pattern = "ilike." + "*e" * 500
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
        await service.ready(http)

        async def quiet_round():
            out = []
            for user_id in ids:
                out.append(await timed(http, "GET", service.url + f"/v1/users/{user_id}", headers=auth(READER)))
                out.append(await timed(http, "GET", service.url + "/v1/users",
                                       params={"count": "none", "limit": "10"}, headers=auth(READER)))
            return out

        idle = await quiet_round()
        stop = asyncio.Event()
        noisy_statuses: dict[int, int] = {}

        async def noisy_loop():
            while not stop.is_set():
                _, status = await timed(http, "GET", service.url + "/v1/users",
                                        params={"email": pattern, "count": "exact"}, headers=auth(NOISY))
                noisy_statuses[status] = noisy_statuses.get(status, 0) + 1
                if status == 429:
                    await asyncio.sleep(0.05)  # a client that honours nothing but a short pause

        noisy = [asyncio.ensure_future(noisy_loop()) for _ in range(12)]
        await asyncio.sleep(1)
        during = await quiet_round()
        stop.set()
        await asyncio.gather(*noisy)
    service.stop()
    return {"idle_p99": p99([ms for ms, _ in idle]), "during_p99": p99([ms for ms, _ in during]),
            "quiet_statuses": sorted({s for _, s in during}), "noisy_statuses": noisy_statuses}


async def random_id_misses(database_url: str, misses: int) -> dict:
    redis = RedisServer()
    await redis.start()
    client = aioredis.Redis.from_url(redis.url)
    service = Service(database_url, redis.url, CACHE_TTL_NOT_FOUND="5")
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:
            await service.ready(http)
            before = (await client.info("memory"))["used_memory"]
            peak = before
            suffixes = ("", "/subscription", "/natal-data")
            started = time.perf_counter()
            queue = iter(range(misses))

            async def worker():
                nonlocal peak
                for i in queue:
                    cid = "c" + uuid.uuid4().hex[:24]
                    await timed(http, "GET", service.url + f"/v1/users/{cid}{suffixes[i % 3]}", headers=auth(READER))
                    if i % 5000 == 0:
                        peak = max(peak, (await client.info("memory"))["used_memory"])

            await asyncio.gather(*(worker() for _ in range(32)))
            elapsed = time.perf_counter() - started
            right_after = (await client.info("memory"))["used_memory"]
            tag_sets = len([k async for k in client.scan_iter(match="*:t:*", count=1000)])
            await asyncio.sleep(7)  # past CACHE_TTL_NOT_FOUND
            await client.execute_command("MEMORY", "PURGE")
            for _ in range(20):  # Redis expires keys lazily and in sampled cycles
                await asyncio.sleep(0.5)
                if await client.dbsize() <= 2:
                    break
            after = (await client.info("memory"))["used_memory"]
            keys_left = await client.dbsize()
    finally:
        service.stop()
        await client.aclose()
        redis.kill()
    return {"misses": misses, "seconds": elapsed, "before": before, "peak": peak, "right_after": right_after,
            "after_ttl": after, "tag_sets": tag_sets, "keys_left": keys_left}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50000)
    parser.add_argument("--misses", type=int, default=100000)
    parser.add_argument("--caller-expensive", type=int, default=2, help="CALLER_EXPENSIVE of the list run")
    parser.add_argument("--only", choices=("passwords", "lists", "misses"))
    args = parser.parse_args()
    url = await create_database("aw_bench_hostile")
    try:
        await asyncio.to_thread(migrate.apply, url)
        results = {}
        if args.only in (None, "passwords"):
            results["passwords"] = await password_starvation(url)
            print("verify-password:", results["passwords"], flush=True)
        if args.only in (None, "lists"):
            results["lists"] = await expensive_list_flood(url, args.users, args.caller_expensive)
            print("expensive lists:", results["lists"], flush=True)
        if args.only in (None, "misses"):
            results["misses"] = await random_id_misses(url, args.misses)
            print("random-id misses:", results["misses"], flush=True)
    finally:
        await drop_database(url)
    if args.only:
        return
    one, two, three = results["passwords"], results["lists"], results["misses"]
    mib = 1 / (1024 * 1024)
    print(f"""
| measure | idle | under attack | ratio |
|---|---:|---:|---:|
| verify-password p99 ms (reader) while 100 concurrent sign-ups (writer), answered 200 | {one['idle_p99']:.0f} | {one['during_p99']:.0f} ({one['during_ok']} ok, {one['during_refused']} refused, refusals p99 {one['refused_p99']:.0f} ms) | {one['during_p99'] / one['idle_p99']:.2f} |
| quiet token p99 ms (GET user + cheap list) while a noisy token floods 12 expensive lists | {two['idle_p99']:.1f} | {two['during_p99']:.1f} | {two['during_p99'] / two['idle_p99']:.2f} |
| Redis used_memory MiB, {three['misses']:,} random-id misses in {three['seconds']:.0f} s | {three['before'] * mib:.2f} | peak {three['peak'] * mib:.2f}, right after {three['right_after'] * mib:.2f}, after TTL {three['after_ttl'] * mib:.2f} | {three['after_ttl'] / three['before']:.2f} |

sign-ups: {one['signup_statuses']} (refusals p99 {one['signup_refused_p99']:.0f} ms); noisy token: {two['noisy_statuses']}; quiet token statuses: {two['quiet_statuses']}; tag sets after the misses: {three['tag_sets']}, keys left after the TTL: {three['keys_left']}
""")


if __name__ == "__main__":
    asyncio.run(main())
