"""Client load for failover tests and bench/failover.py: writes and reads through running services.

Every answer is classified. Allowed: 201/200 (acknowledged), 503 with Retry-After (refused, nothing
promised), and a connection error on an instance that was killed. Anything else (a 500, a 503 without
Retry-After, a stale read) is recorded in `unexpected` and fails the test.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
import asyncpg
from aiohttp import web

from service.app import create_app
from tests.conftest import READ, WRITE
from tests.pg_cluster import free_port


async def serve_app(settings) -> tuple[web.AppRunner, str]:
    """The service in this process on a free loopback port (a real socket, like a deployed instance)."""
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def nested_user(run: str) -> dict:
    """A user created with its subscription and natal data in one transaction (all or nothing)."""
    return {
        "email": f"{run}-{uuid.uuid4().hex[:12]}@failover.example",
        "name": "failover",
        "subscription": {"stripeCustomerId": "cus_" + uuid.uuid4().hex, "status": "ACTIVE"},
        "natalData": {"birthDate": "1990-05-17T14:30:00Z", "location": "Paris", "timezone": "Europe/Paris"},
    }


@dataclass
class Load:
    bases: list[str]
    run: str = field(default_factory=lambda: "fo" + uuid.uuid4().hex[:8])
    acknowledged: dict[str, dict] = field(default_factory=dict)  # email -> the 201 answer's user
    unexpected: list[str] = field(default_factory=list)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (time, kind, outcome)
    slowest_write: float = 0.0  # seconds, of an acknowledged write (a Redis failover delays them)
    dead: set[str] = field(default_factory=set)  # bases killed on purpose: connection errors expected
    # Reads from a standby (DATABASE_READ_URL) may lag: a just-created user may not be there yet (404).
    reads_may_lag: bool = False
    stale_reads: int = 0
    started: float = 0.0
    event_started: float = 0.0
    event_ended: float = 0.0
    _stop: bool = False

    def _record(self, kind: str, outcome: str) -> None:
        self.events.append((time.monotonic(), kind, outcome))

    async def _classify(self, http: aiohttp.ClientSession, kind: str, method: str, base: str, path: str,
                        body: dict | None = None) -> tuple[int | None, object]:
        started = time.monotonic()
        headers = READ if method == "GET" else WRITE
        try:
            async with http.request(method, base + path, json=body, headers=headers) as r:
                body = await r.json(content_type=None) if r.status != 204 else None
                if r.status == 503:
                    if not r.headers.get("Retry-After"):
                        self.unexpected.append(f"{kind}: 503 without Retry-After")
                    self._record(kind, "503")
                elif kind == "read" and r.status == 404 and self.reads_may_lag:
                    self._record(kind, "lag")
                elif r.status >= 500 or r.status not in (200, 201):
                    self.unexpected.append(f"{kind}: {r.status} {body}")
                    self._record(kind, "error")
                else:
                    self._record(kind, "ok")
                    if kind != "read":
                        self.slowest_write = max(self.slowest_write, time.monotonic() - started)
                return r.status, body
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            if base not in self.dead:
                self.unexpected.append(f"{kind}: {type(exc).__name__} from a live instance")
            self._record(kind, "connection")
            return None, None

    async def creator(self, http: aiohttp.ClientSession, index: int) -> None:
        """Creates nested users one after another, on the bases in turn."""
        turn = index
        while not self._stop:
            base = self.bases[turn % len(self.bases)]
            turn += 1
            body = nested_user(self.run)
            status, answer = await self._classify(http, "create", "POST", base, "/v1/users", body)
            if status == 201:
                self.acknowledged[body["email"]] = answer
            elif status is None or status == 503:
                await asyncio.sleep(0.05)

    async def renamer(self, http: aiohttp.ClientSession, index: int) -> None:
        """Owns one user: renames it on one instance, then at once reads it on another. The read must
        show the new name (or be refused): anything older is a stale read."""
        while not self._stop and not self.acknowledged:
            await asyncio.sleep(0.02)
        user = next(iter(self.acknowledged.values()))
        created = nested_user(self.run)
        status = None
        while status != 201 and not self._stop:
            base = self.bases[index % len(self.bases)]
            status, user = await self._classify(http, "create", "POST", base, "/v1/users", created)
            if status == 201:
                self.acknowledged[created["email"]] = user
            else:
                await asyncio.sleep(0.05)
        version = 0
        turn = index
        while not self._stop:
            writer, reader = self.bases[turn % len(self.bases)], self.bases[(turn + 1) % len(self.bases)]
            turn += 1
            # Warm the reader's caches with the current name, so a lost invalidation would show.
            await self._classify(http, "read", "GET", reader, f"/v1/users/{user['id']}")
            name = f"v{version + 1}"
            status, answer = await self._classify(http, "rename", "PATCH", writer, f"/v1/users/{user['id']}",
                                                  {"name": name})
            if status != 200:
                await asyncio.sleep(0.05)
                continue
            version += 1
            self.acknowledged[created["email"]] = answer
            status, seen = await self._classify(http, "read", "GET", reader, f"/v1/users/{user['id']}")
            if status == 200 and seen["name"] != name:
                self.stale_reads += 1
                self.unexpected.append(f"stale read on {reader}: {seen['name']} after {name} was acknowledged "
                                       f"(at {time.monotonic() - self.started:.2f} s; event at "
                                       f"{self.event_started - self.started:.2f}-{self.event_ended - self.started:.2f} s)")

    async def reader(self, http: aiohttp.ClientSession) -> None:
        while not self._stop:
            if not self.acknowledged:
                await asyncio.sleep(0.02)
                continue
            email = random.choice(list(self.acknowledged))
            user = self.acknowledged[email]
            base = random.choice(self.bases)
            status, _ = await self._classify(http, "read", "GET", base, f"/v1/users/{user['id']}")
            if status in (None, 503):
                await asyncio.sleep(0.05)

    async def run_while(self, event, creators=3, renamers=2, readers=2, warmup=1.0, settle=2.0) -> None:
        """Load before, during and after `event` (an async callable)."""
        timeout = aiohttp.ClientTimeout(total=60)  # the CI machine may be loaded; a slow answer is no error
        async with aiohttp.ClientSession(timeout=timeout) as http:
            tasks = [asyncio.create_task(self.creator(http, i)) for i in range(creators)]
            tasks += [asyncio.create_task(self.renamer(http, i)) for i in range(renamers)]
            tasks += [asyncio.create_task(self.reader(http)) for _ in range(readers)]
            self.started = self.event_started = self.event_ended = time.monotonic()
            try:
                await asyncio.sleep(warmup)
                self.event_started = time.monotonic()
                await event()
                self.event_ended = time.monotonic()
                await asyncio.sleep(settle)
            finally:
                self._stop = True
                await asyncio.gather(*tasks, return_exceptions=True)

    # ---- figures ------------------------------------------------------------------------------------

    def figures(self) -> dict:
        """Seconds during which writes were refused, and what was served meanwhile."""
        during = sum(1 for t, _, o in self.events if self.event_started <= t <= self.event_ended and o == "ok")
        failures = [t for t, kind, outcome in self.events if kind != "read" and outcome != "ok"]
        if not failures:
            return {"refused_seconds": 0.0, "refused": 0, "served_during": 0,
                    "acknowledged": len(self.acknowledged), "stale_reads": self.stale_reads,
                    "slowest_write_seconds": round(self.slowest_write, 2), "served_during_event": during,
                    "event_seconds": round(self.event_ended - self.event_started, 2)}
        start, end = min(failures), max(failures)
        served = sum(1 for t, _, outcome in self.events if start <= t <= end and outcome == "ok")
        return {"refused_seconds": round(end - start, 2),
                "refused": sum(1 for _, _, o in self.events if o in ("503", "connection")),
                "served_during": served, "acknowledged": len(self.acknowledged),
                "stale_reads": self.stale_reads, "slowest_write_seconds": round(self.slowest_write, 2),
                "served_during_event": during, "event_seconds": round(self.event_ended - self.event_started, 2)}

    async def check_persisted(self, database_url: str) -> None:
        """Every acknowledged user is in `database_url` as answered, with its subscription and natal
        data; and no user of this run exists without them (a half-applied create)."""
        conn = await asyncpg.connect(database_url, timeout=10)
        try:
            rows = await conn.fetch(
                'SELECT u.email, u.name, s."userId" IS NOT NULL AS sub, n."userId" IS NOT NULL AS natal '
                'FROM users u LEFT JOIN subscriptions s ON s."userId" = u.id '
                'LEFT JOIN natal_data n ON n."userId" = u.id WHERE u.email LIKE $1', self.run + "-%")
        finally:
            await conn.close()
        stored = {r["email"]: r for r in rows}
        lost = [e for e in self.acknowledged if e not in stored]
        assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
        # A rename answered 503 may have committed (the answer was lost, not the write): a stored
        # version may be newer than the acknowledged one, never older.
        changed = [e for e, u in self.acknowledged.items() if _version(stored[e]["name"]) < _version(u["name"])]
        assert not changed, f"acknowledged renames lost: {changed[:3]}"
        half = [r["email"] for r in rows if not (r["sub"] and r["natal"])]
        assert not half, f"half-applied creates: {half[:3]}"


def _version(name: str) -> int:
    return int(name[1:]) if name.startswith("v") else 0
