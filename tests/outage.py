"""A database outage under steady load, shared by the test (short) and bench/outage.py (10 s).

The load: cached reads of known users, uncached reads (a list page), and writes (a user with nested
natal data, so a half-applied write would show as a user without it). The database is a private
cluster stopped and started by the run, never the machine's shared server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import asyncpg

from service import migrate
from service.app import create_app

WRITE = {"Authorization": "Bearer outage-write"}
TOKENS = "w:outage-write:write"


@dataclass
class Tally:
    sent: int = 0
    by_status: dict = field(default_factory=dict)
    slowest: float = 0.0
    missing_retry_after: int = 0
    acknowledged: list = field(default_factory=list)  # emails answered 201
    refused: list = field(default_factory=list)  # emails answered 503
    cached_read_failures: int = 0

    def count(self, kind: str, status: int, elapsed: float) -> None:
        self.sent += 1
        key = f"{kind} {status}"
        self.by_status[key] = self.by_status.get(key, 0) + 1
        self.slowest = max(self.slowest, elapsed)


async def run_outage(client_factory, cluster, redis_url, make_settings, outage_seconds: float,
                     before: float = 1.0, after: float = 3.0, writers: int = 4, readers: int = 4) -> Tally:
    admin = await asyncpg.connect(cluster.url())
    await admin.execute("CREATE DATABASE outage")
    await admin.close()
    url = cluster.url("outage")
    await asyncio.to_thread(migrate.apply, url)
    settings = make_settings(url, redis_url, service_tokens=TOKENS, pool_acquire_timeout=1.0, connect_timeout=1.0,
                             pool_min_size=1, pool_max_size=5, retry_after_seconds=2)
    client = await client_factory(create_app(settings))

    known = []
    for i in range(10):
        r = await client.post("/v1/users", json={"email": f"known-{i}-{uuid.uuid4().hex[:6]}@example.com"},
                              headers=WRITE)
        known.append((await r.json())["id"])
    for user_id in known:  # warm the cache
        assert (await client.get(f"/v1/users/{user_id}", headers=WRITE)).status == 200

    tally = Tally()
    stop_at = time.monotonic() + before + outage_seconds + after

    async def timed(kind, call):
        started = time.monotonic()
        response = await call()
        elapsed = time.monotonic() - started
        tally.count(kind, response.status, elapsed)
        if response.status == 503 and "Retry-After" not in response.headers:
            tally.missing_retry_after += 1
        return response

    async def writer(n):
        i = 0
        while time.monotonic() < stop_at:
            email = f"w{n}-{i}-{uuid.uuid4().hex[:6]}@example.com"
            i += 1
            body = {"email": email, "natalData": {"birthDate": "1990-05-06T07:08:09Z", "location": "Turin"}}
            r = await timed("write", lambda: client.post("/v1/users", json=body, headers=WRITE))
            (tally.acknowledged if r.status == 201 else tally.refused).append(email)
            await asyncio.sleep(0.02)

    async def reader(n):
        i = 0
        while time.monotonic() < stop_at:
            user_id = known[(n + i) % len(known)]
            i += 1
            r = await timed("cached-read", lambda: client.get(f"/v1/users/{user_id}", headers=WRITE))
            if r.status != 200:
                tally.cached_read_failures += 1
            await timed("list", lambda: client.get("/v1/users?limit=5&count=none", headers=WRITE))
            await asyncio.sleep(0.01)

    async def chaos():
        await asyncio.sleep(before)
        await asyncio.to_thread(cluster.stop, "fast")
        await asyncio.sleep(outage_seconds)
        await asyncio.to_thread(cluster.start)

    await asyncio.gather(chaos(), *(writer(n) for n in range(writers)), *(reader(n) for n in range(readers)))
    tally.by_status = dict(sorted(tally.by_status.items()))
    return tally


async def check_writes(url: str, tally: Tally) -> dict:
    """Acknowledged writes all present; refused ones absent or whole (never a user without natal data)."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            'SELECT u.email, n.id IS NOT NULL AS has_natal FROM users u LEFT JOIN natal_data n ON n."userId" = u.id '
            "WHERE u.email = ANY($1::text[])", tally.acknowledged + tally.refused)
    finally:
        await conn.close()
    found = {r["email"]: r["has_natal"] for r in rows}
    return {
        "acknowledged": len(tally.acknowledged),
        "acknowledged_found": sum(1 for e in tally.acknowledged if e in found),
        "refused": len(tally.refused),
        "refused_found_whole": sum(1 for e in tally.refused if found.get(e) is True),
        "half_applied": sum(1 for has_natal in found.values() if not has_natal),
    }


@dataclass
class RedisTally:
    sent: int = 0
    by_status: dict = field(default_factory=dict)
    hits_before_stop: int = 0
    hits_at_restart: int = 0
    hits_at_end: int = 0
    errors: int = 0

    def count(self, status: int) -> None:
        self.sent += 1
        key = str(status)
        self.by_status[key] = self.by_status.get(key, 0) + 1


async def run_redis_outage(client_factory, redis_server, database_url, make_settings, outage_seconds: float,
                           before: float = 1.0, after: float = 3.0, readers: int = 8) -> RedisTally:
    """Cached reads under load while Redis is killed and restarted: every answer must still be 200."""
    settings = make_settings(database_url, redis_server.url, service_tokens=TOKENS, redis_timeout=0.1)
    client = await client_factory(create_app(settings))
    known = []
    for i in range(20):
        r = await client.post("/v1/users", json={"email": f"r{i}-{uuid.uuid4().hex[:8]}@example.com"}, headers=WRITE)
        known.append((await r.json())["id"])
    tally = RedisTally()
    stop_at = time.monotonic() + before + outage_seconds + after

    async def hits() -> int:
        r = await client.get("/v1/cache/stats", headers=WRITE)
        return (await r.json())["hits"]

    async def reader(n):
        i = 0
        while time.monotonic() < stop_at:
            r = await client.get(f"/v1/users/{known[(n + i) % len(known)]}", headers=WRITE)
            tally.count(r.status)
            i += 1
            await asyncio.sleep(0.005)

    async def chaos():
        await asyncio.sleep(before)
        tally.hits_before_stop = await hits()
        redis_server.kill()
        await asyncio.sleep(outage_seconds)
        await redis_server.start()
        tally.hits_at_restart = await hits()

    await asyncio.gather(chaos(), *(reader(n) for n in range(readers)))
    tally.hits_at_end = await hits()
    r = await client.get("/v1/cache/stats", headers=WRITE)
    tally.errors = (await r.json())["errors"]
    return tally
