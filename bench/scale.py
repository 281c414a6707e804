"""The platform at 1M users (issue 15): lists, searches, deep pages, the hot reads and the sweeps.

    nice .venv/bin/python bench/scale.py                 # build once (reused afterwards), measure, write RESULTS.md
    .venv/bin/python bench/scale.py --scale 0.01 --no-write   # a quick look at 10,000 users
    .venv/bin/python bench/scale.py --rebuild            # drop and build the data set again
    .venv/bin/python bench/scale.py --drop               # drop the data set and exit

The data set lives in its own database, `aw_scale_<users>` on DATABASE_URL's server (default the local
one), built with set-based SQL (generate_series, deterministic: hashes of the row number) and marked
complete with a database comment, so later runs reuse it. At --scale 1: 1M users, 1.2M accounts,
2M sessions (half expired), 300k subscriptions, 500k natal data, 2M chart cache rows (60% expired),
200k verification tokens (half expired).

Times are "server time" as seen by one sequential client in the same process (aiohttp test server,
nothing else in flight): each request is sent `--requests` times and p50/p99 are taken over those
samples. The count cache is off (LIST_COUNT_CACHE_SECONDS=0), so every list request pays its count.
The sweeps run on a copy of the database (CREATE DATABASE ... TEMPLATE, STRATEGY FILE_COPY: a WAL-logged
copy would put the 5 GB data set in the WAL and checkpoint it while the sweeps are measured), which is
dropped afterwards, while four readers do user reads and session lookups; their longest answer is the
figure to watch, next to the same readers' answers with no sweep running (the "none" row).

The requests go through the test server's plain client session and each answer is released: aiohttp's
TestClient keeps every response it returns (to close them at the end), so 60,000 reads made the process's
full garbage collections take 0.1-2 s each, stopping the event loop that also runs the server and the
sweep. That was the "1-3 s stall during the sweeps" of the first runs (bench/RESULTS.md). As `serve` does,
start-up objects are frozen (gc.freeze) once the app is up.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres")

import asyncpg  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from service import migrate  # noqa: E402
from service.app import create_app  # noqa: E402
from service.data import sweeps  # noqa: E402
from service.deps import DEPS  # noqa: E402
from service.listing import build_list_query, encode_cursor  # noqa: E402
from service.routes.lists import USERS  # noqa: E402
from tests.conftest import READ, WRITE, make_settings  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
BEGIN, END = "<!-- scale:begin (written by bench/scale.py) -->", "<!-- scale:end -->"
MARK = "aw-scale complete v1"
HASH = "(hashtext({0})::bigint & 2147483647)"
USER = "'u' || lpad((({0}) % {{users}} + 1)::text, 7, '0')"  # the user of row {0}: u0000001..


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def seed_statements(n: dict) -> list[tuple[str, str]]:
    user_of = USER.format("i").format(users=n["users"])
    return [
        ("users", f"""
INSERT INTO users (id, email, "emailVerified", name, role, "createdAt", "updatedAt")
SELECT 'u' || lpad(i::text, 7, '0'),
       (ARRAY['anna','ben','chloe','david','emma','felix','greta','hugo','ida','jonas','kim','leo','mia','noah',
              'olga','paul'])[1 + i % 16] || '.' ||
       (ARRAY['smith','meyer','jones','garcia','novak','rossi','berg','khan','silva','tanaka'])[1 + (i / 16) % 10]
         || i || '@' ||
       (ARRAY['gmail.com','example.com','outlook.com','web.de','proton.me','yahoo.com','icloud.com','gmx.net',
              'company.test','uni.test'])[1 + (i / 7) % 10],
       CASE WHEN i % 3 <> 0 THEN created + interval '5 minutes' END,
       CASE WHEN i % 10 <> 0 THEN (ARRAY['Anna','Ben','Chloe','David','Emma','Felix','Greta','Hugo','Ida','Jonas',
              'Kim','Leo','Mia','Noah','Olga','Paul'])[1 + i % 16] || ' ' ||
              (ARRAY['Smith','Meyer','Jones','Garcia','Novak','Rossi','Berg','Khan','Silva','Tanaka'])[1 + (i / 16) % 10]
       END,
       (CASE WHEN i % 50 = 0 THEN 'ADMIN' ELSE 'USER' END)::"Role",
       created, created + (i % 90) * interval '1 day'
FROM (SELECT i, timestamp '2023-01-01' + ({HASH.format("'created' || i")} % 94608000) * interval '1 second'
             + (i % 1000) * interval '1 millisecond' AS created
      FROM generate_series(1, {n["users"]}) AS i) AS s"""),
        ("accounts", f"""
INSERT INTO accounts (id, "userId", type, provider, "providerAccountId", expires_at, token_type, scope)
SELECT 'a' || i, {user_of}, 'oauth', (ARRAY['google','github','discord'])[1 + i % 3], 'p' || i,
       1900000000, 'Bearer', 'openid email profile'
FROM generate_series(1, {n["accounts"]}) AS i"""),
        ("sessions", f"""
INSERT INTO sessions (id, "sessionToken", "userId", expires)
SELECT 's' || i, md5('token' || i) || md5('token2' || i), {user_of},
       CASE WHEN i % 2 = 0 THEN (now() AT TIME ZONE 'UTC') - (i % 100000) * interval '1 minute' - interval '1 minute'
            ELSE (now() AT TIME ZONE 'UTC') + interval '30 days' + (i % 1000) * interval '1 minute' END
FROM generate_series(1, {n["sessions"]}) AS i"""),
        ("subscriptions", f"""
INSERT INTO subscriptions (id, "userId", "stripeCustomerId", "stripeSubscriptionId", "stripePriceId", status,
                           "currentPeriodEnd", "cancelAtPeriodEnd", "createdAt", "updatedAt")
SELECT 'b' || i, 'u' || lpad((i * 3)::text, 7, '0'), 'cus_' || i, 'sub_' || i, 'price_monthly',
       (ARRAY['ACTIVE','ACTIVE','ACTIVE','TRIALING','CANCELLED','INACTIVE','ACTIVE','ACTIVE','ACTIVE','ACTIVE',
              'ACTIVE','ACTIVE','ACTIVE','ACTIVE','ACTIVE','ACTIVE','ACTIVE','ACTIVE','ACTIVE','PAST_DUE'])[1 + i % 20]
         ::"SubscriptionStatus",
       timestamp '2026-12-01' + (i % 60) * interval '1 day', i % 10 = 0,
       timestamp '2024-01-01' + ({HASH.format("'sub' || i")} % 60000000) * interval '1 second', timestamp '2025-01-01'
FROM generate_series(1, {n["subscriptions"]}) AS i"""),
        ("natal_data", f"""
INSERT INTO natal_data (id, "userId", "birthDate", location, latitude, longitude, timezone, "createdAt", "updatedAt")
SELECT 'n' || i, 'u' || lpad((i * 2)::text, 7, '0'),
       timestamp '1950-01-01' + ({HASH.format("'birth' || i")} % 1800000000) * interval '1 second',
       'City ' || (i % 500), 52.5, 13.4, 'Europe/Berlin', timestamp '2025-01-01', timestamp '2025-01-01'
FROM generate_series(1, {n["natal"]}) AS i"""),
        ("chart_cache", f"""
INSERT INTO chart_cache (id, "userId", "chartType", "chartData", interpretation, "createdAt", "expiresAt")
SELECT 'c' || i, {user_of},
       (ARRAY['TROPICAL','DRACONIC','HORARY','SYNASTRY','PROGRESSED','SOLAR_RETURN'])[1 + i % 6]::"ChartType",
       jsonb_build_object('sun', i % 360, 'moon', (i * 7) % 360, 'asc', (i * 13) % 360,
                          'houses', jsonb_build_array(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12),
                          'aspects', repeat('trine square sextile opposition ', 20)),
       'An interpretation of chart ' || i,
       (now() AT TIME ZONE 'UTC') - ({HASH.format("'chart' || i")} % 31536000) * interval '1 second',
       CASE WHEN i % 10 < 6 THEN (now() AT TIME ZONE 'UTC') - (i % 100000) * interval '1 second' - interval '1 minute'
            ELSE (now() AT TIME ZONE 'UTC') + interval '30 days' END
FROM generate_series(1, {n["charts"]}) AS i"""),
        ("verification_tokens", f"""
INSERT INTO verification_tokens (identifier, token, expires)
SELECT 'user' || i || '@example.com', md5('vt' || i),
       (now() AT TIME ZONE 'UTC') + CASE WHEN i % 2 = 0 THEN -interval '1 hour' ELSE interval '1 day' END
FROM generate_series(1, {n["tokens"]}) AS i"""),
    ]


def sizes(scale: float) -> dict:
    base = {"users": 1_000_000, "accounts": 1_200_000, "sessions": 2_000_000, "subscriptions": 300_000,
            "natal": 500_000, "charts": 2_000_000, "tokens": 200_000}
    return {k: max(10, round(v * scale)) for k, v in base.items()}


def url_of(admin_url: str, database: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{database}"


async def ensure_dataset(admin_url: str, name: str, n: dict, rebuild: bool) -> tuple[str, dict]:
    admin = await asyncpg.connect(admin_url)
    try:
        comment = await admin.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", name)
        if comment == MARK and not rebuild:
            log(f"reusing {name}")
            url = url_of(admin_url, name)
            # Migrations added since the data set was built (their indexes are what is measured).
            await asyncio.to_thread(migrate.apply, url)
            return url, {}
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = url_of(admin_url, name)
    timings = {}
    started = time.perf_counter()
    await asyncio.to_thread(migrate.apply, url)
    timings["migrate (empty)"] = time.perf_counter() - started
    conn = await asyncpg.connect(url)
    try:
        for table, sql in seed_statements(n):
            t = time.perf_counter()
            await conn.execute(sql)
            timings[table] = time.perf_counter() - t
            log(f"seeded {table} in {timings[table]:.0f} s")
        t = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.perf_counter() - t
        await conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{MARK}'")
    finally:
        await conn.close()
    log(f"built {name} in {time.perf_counter() - started:.0f} s")
    return url, timings


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


async def call(client, method: str, path: str, headers=READ, json=None) -> tuple[int, bytes]:
    """One request through the client's session, released at once (TestClient.request would keep it)."""
    async with client.session.request(method, client.make_url(path), headers=headers, json=json) as r:
        return r.status, await r.read()


async def start(app) -> TestClient:
    client = TestClient(TestServer(app))
    await client.start_server()
    gc.collect()
    gc.freeze()  # as `serve` does once the pools are open (service/server.py)
    return client


async def timed(client, method: str, path: str, count: int, **kwargs) -> dict:
    samples, status = [], None
    for i in range(count):
        p = path(i) if callable(path) else path
        body = kwargs["json"](i) if callable(kwargs.get("json")) else kwargs.get("json")
        t = time.perf_counter()
        status, _ = await call(client, method, p, kwargs.get("headers", READ), body)
        samples.append(time.perf_counter() - t)
    return {"p50": pct(samples, 0.5), "p99": pct(samples, 0.99), "max": max(samples) * 1000, "status": status}


async def deep_cursor(url: str, sort: str, depth: int) -> str:
    """The cursor a client would hold after walking `depth` rows in this order (made from that row)."""
    q = build_list_query(USERS, _Query(sort=sort))
    order = ", ".join(f'"{f.name}" {"DESC" if d else "ASC"}' for f, d in q.sort)
    conn = await asyncpg.connect(url)
    try:
        from service.db import init_connection

        await init_connection(conn)
        row = await conn.fetchrow(f'SELECT "createdAt", id FROM users ORDER BY {order} OFFSET $1 LIMIT 1', depth)
    finally:
        await conn.close()
    return encode_cursor(USERS, q.sort, dict(row))


class _Query(dict):
    def getall(self, name):
        return [self[name]]


async def measure_requests(url: str, n: dict, count: int) -> list[tuple[str, dict]]:
    settings = make_settings(url, None, cache_enabled=False, list_count_cache_seconds=0, bcrypt_rounds=4,
                             pool_max_size=4)
    client = await start(create_app(settings))
    users = n["users"]

    def user_id(i: int) -> str:
        return f"u{(i * 7919) % users + 1:07d}"

    results = []
    try:
        status, body = await call(client, "PUT", f"/v1/users/{user_id(0)}/password", WRITE,
                                  {"password": "correct horse battery"})
        assert status in (200, 204), body
        middle = users // 2
        cursors = {sort: await deep_cursor(url, sort, middle) for sort in ("-createdAt", "-createdAt,id")}
        cases = [
            ("GET /v1/users (default: newest first, count=auto)", "/v1/users"),
            ("GET /v1/users?count=exact", "/v1/users?count=exact"),
            ("GET /v1/users?count=estimated", "/v1/users?count=estimated"),
            ("GET /v1/users?count=none", "/v1/users?count=none"),
            ("GET /v1/users?sort=-createdAt,email&select=id,email&role=eq.admin&createdAt=gte.2025-06-01T00:00:00Z",
             "/v1/users?sort=-createdAt,email&select=id,email&role=eq.admin&createdAt=gte.2025-06-01T00:00:00Z"),
            ("GET /v1/users?name=not.is.null&email=ilike.*@example.com&limit=50&count=none (refused: needs another filter)",
             "/v1/users?name=not.is.null&email=ilike.*@example.com&limit=50&count=none"),
            ("GET /v1/users?email=ilike.*@example.com&limit=50", "/v1/users?email=ilike.*@example.com&limit=50"),
            ("search e-mail substring, rare: email=ilike.*meyer12345*", "/v1/users?email=ilike.*meyer12345*"),
            ("search e-mail substring, common: email=ilike.*gmail*", "/v1/users?email=ilike.*gmail*"),
            ("search e-mail prefix: email=like.emma.rossi4*", "/v1/users?email=like.emma.rossi4*"),
            ("search e-mail prefix, any case: email=ilike.Emma.Rossi4*", "/v1/users?email=ilike.Emma.Rossi4*"),
            ("search name: name=ilike.*greta berg*", "/v1/users?name=ilike.*greta berg*"),
            ("search name, sorted by name: name=ilike.*greta berg*&sort=name",
             "/v1/users?name=ilike.*greta berg*&sort=name"),
            ("GET /v1/users?sort=email", "/v1/users?sort=email"),
            ("GET /v1/users?sort=name (refused: needs another filter)", "/v1/users?sort=name"),
            ("GET /v1/users?page=1000&limit=10 (deepest offset page)", "/v1/users?page=1000&limit=10"),
            ("GET /v1/users?page=1001&limit=10 (refused: use cursor)", "/v1/users?page=1001&limit=10"),
            (f"deep cursor at row {middle:,}, sort=-createdAt", f"/v1/users?count=none&cursor={cursors['-createdAt']}"),
            (f"deep cursor at row {middle:,}, mixed sort=-createdAt,id",
             f"/v1/users?count=none&sort=-createdAt,id&cursor={cursors['-createdAt,id']}"),
            ("GET /v1/users/{id}/accounts", lambda i: f"/v1/users/{user_id(i)}/accounts"),
            ("GET /v1/subscriptions", "/v1/subscriptions"),
            ("GET /v1/subscriptions?status=eq.PAST_DUE", "/v1/subscriptions?status=eq.PAST_DUE"),
            ("GET /v1/subscriptions?currentPeriodEnd=lt.2026-12-10T00:00:00Z&sort=currentPeriodEnd",
             "/v1/subscriptions?currentPeriodEnd=lt.2026-12-10T00:00:00Z&sort=currentPeriodEnd"),
            ("GET /v1/charts (unexpired, newest first)", "/v1/charts"),
            ("GET /v1/charts?userId=eq.{id}", lambda i: f"/v1/charts?userId=eq.{user_id(i)}"),
        ]
        for name, path in cases:
            results.append((name, await timed(client, "GET", path, count)))
            log(f"{name}: {results[-1][1]}")
        results.append(("GET /v1/users/{id} (cache off)",
                        await timed(client, "GET", lambda i: f"/v1/users/{user_id(i)}", count)))
        conn = await asyncpg.connect(url)
        tokens = [r["sessionToken"] for r in await conn.fetch(
            "SELECT \"sessionToken\" FROM sessions WHERE expires > now() AT TIME ZONE 'UTC' LIMIT $1", count)]
        await conn.close()
        results.append(("POST /v1/sessions/lookup (cache off)",
                        await timed(client, "POST", "/v1/sessions/lookup", count,
                                    json=lambda i: {"sessionToken": tokens[i % len(tokens)]})))
        results.append(("POST /v1/users/{id}/verify-password (bcrypt cost 4)",
                        await timed(client, "POST", f"/v1/users/{user_id(0)}/verify-password", count,
                                    json={"password": "correct horse battery"})))
    finally:
        await client.close()
    return results


async def measure_sweeps(admin_url: str, name: str, batch: int, control_seconds: float = 20.0) -> dict:
    copy = f"{name}_sweep"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        t = time.perf_counter()
        await admin.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}" STRATEGY FILE_COPY')
        log(f"copied the data set for the sweeps in {time.perf_counter() - t:.0f} s")
    finally:
        await admin.close()
    url = url_of(admin_url, copy)
    try:
        settings = make_settings(url, None, cache_enabled=False, sweep_batch_size=batch, pool_max_size=6)
        client = await start(create_app(settings))
        conn = await asyncpg.connect(url)
        tokens = [r["sessionToken"] for r in await conn.fetch(
            "SELECT \"sessionToken\" FROM sessions WHERE expires > now() AT TIME ZONE 'UTC' LIMIT 2000")]
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM users LIMIT 2000")]
        out = {}
        try:
            for table in ("none", *sweeps.SWEEPS):  # "none": the readers alone, for comparison
                latencies: list[float] = []
                done = asyncio.Event()

                async def reader(k, done=done, latencies=latencies):
                    i = k
                    while not done.is_set():
                        i += 4
                        t = time.perf_counter()
                        if i % 2:
                            await call(client, "POST", "/v1/sessions/lookup",
                                       json={"sessionToken": tokens[i % len(tokens)]})
                        else:
                            await call(client, "GET", f"/v1/users/{ids[i % len(ids)]}")
                        latencies.append(time.perf_counter() - t)

                lsn = await conn.fetchval("SELECT pg_current_wal_lsn()")
                readers = [asyncio.create_task(reader(k)) for k in range(4)]
                t = time.perf_counter()
                if table == "none":
                    await asyncio.sleep(control_seconds)
                    result = sweeps.SweepResult(0, 0, 0.0)
                else:
                    result = await sweeps.sweep_table(client.server.app[DEPS], table, batch)
                elapsed = time.perf_counter() - t
                done.set()
                await asyncio.gather(*readers)
                wal = await conn.fetchval("SELECT pg_current_wal_lsn() - $1::pg_lsn", lsn)
                dead = await conn.fetchval("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = $1", table)
                out[table] = {"rows": result.count, "seconds": elapsed, "batches": result.batches,
                              "longest_batch_ms": result.longestBatchMs, "rows_per_s": result.count / elapsed,
                              "physical": result.physicalOrder, "wal_mb": float(wal) / 1e6, "dead_after": dead or 0,
                              "reads": len(latencies), "read_p50": pct(latencies, 0.5),
                              "read_p99": pct(latencies, 0.99), "read_max": max(latencies) * 1000,
                              "over_100ms": sum(1 for x in latencies if x > 0.1)}
                log(f"sweep {table}: {out[table]}")
        finally:
            await conn.close()
            await client.close()
    finally:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        await admin.close()
    return out


def report(n: dict, build: dict, requests: list, swept: dict, count: int, batch: int, elapsed: float,
           loads: list[str]) -> str:
    lines = [BEGIN, "", "## Scale: 1M users (bench/scale.py)", "",
             (f"`nice .venv/bin/python bench/scale.py` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{os.cpu_count()} cores shared with other jobs (noisy: compare rows of one run), "
              f"Python {platform.python_version()}, PostgreSQL on the same machine; {elapsed / 60:.0f} min in all; "
              f"load average (1, 5, 15 min) {' at the start, '.join(loads)} at the end."),
             "", "Data set: " + ", ".join(f"{v:,} {k}" for k, v in n.items())
             + " (sessions and tokens half expired, charts 60% expired).", ""]
    if build:
        lines += ["Build: " + ", ".join(f"{k} {v:.0f} s" for k, v in build.items()) + ".", ""]
    lines += [f"Server time of one sequential client, {count} requests each, count cache off:", "",
              "| request | status | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    for name, r in requests:
        lines.append(f"| {name} | {r['status']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |")
    if swept:
        lines += ["", (f"Sweeps (batch {batch:,}, `SWEEP_PAUSE_MS` 20) on a copy, with 4 readers "
                       "(user reads and session lookups) running meanwhile; \"none\": the readers alone. "
                       "WAL is the server's (other databases' writes included):"), "",
                  ("| table | rows | s | rows/s | batches | physical order | longest batch ms | WAL MB | "
                   "dead rows after | reads | read p50 ms | read p99 ms | read max ms | reads > 100 ms |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for table, s in swept.items():
            lines.append(f"| {table} | {s['rows']:,} | {s['seconds']:.1f} | {s['rows_per_s']:,.0f} | {s['batches']} | "
                         f"{'yes' if s['physical'] else 'no'} | {s['longest_batch_ms']:.0f} | {s['wal_mb']:.0f} | "
                         f"{s['dead_after']:,} | {s['reads']:,} | {s['read_p50']:.1f} | {s['read_p99']:.1f} | "
                         f"{s['read_max']:.1f} | {s['over_100ms']} |")
    lines += ["", END]
    return "\n".join(lines)


def write_results(block: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


async def main(args) -> None:
    admin_url = os.environ["DATABASE_URL"]
    n = sizes(args.scale)
    name = f"aw_scale_{n['users']}"
    if args.drop:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        return
    started = time.perf_counter()
    loads = [_load()]
    url, build = await ensure_dataset(admin_url, name, n, args.rebuild)
    requests = await measure_requests(url, n, args.requests)
    swept = {} if args.no_sweeps else await measure_sweeps(admin_url, name, args.batch)
    loads.append(_load())
    block = report(n, build, requests, swept, args.requests, args.batch, time.perf_counter() - started, loads)
    print(block)
    if args.write:
        write_results(block)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)  # SWEEP_BATCH_SIZE's default
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--drop", action="store_true")
    parser.add_argument("--no-sweeps", action="store_true")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True)
    asyncio.run(main(parser.parse_args()))
