"""The benchmark suite (issues 5, 6 and 8): one command, side-by-side ratios measured in one run.

    .venv/bin/python bench/run.py                       # full run: 2 rounds of 15 s, writes bench/RESULTS.md
    .venv/bin/python bench/run.py --quick               # smoke run: 10,000 users, 1 round of 3 s, prints only
    .venv/bin/python bench/run.py --only W1,W3 --rounds 1 --duration 10

Against DATABASE_URL's server (default postgresql://root@127.0.0.1:5432/postgres) and REDIS_URL
(default redis://127.0.0.1:6379/0) it creates two databases named aw_bench_*, seeds them with set-based
SQL, starts `python -m service serve` (and bench/baseline_app.py) as subprocesses, drives them with wrk
(Debian package `wrk`) through bench/*.lua, prints a table, and drops the databases and its own Redis
keys (CACHE_PREFIX aw_bench_*:) at the end - also when interrupted. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import msgspec  # noqa: E402
import psutil  # noqa: E402

from service import MIGRATIONS_DIR  # noqa: E402
from service import migrate  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://root@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "MP")
MAX_PAGE = 251  # pages of 20: offsets 0..5,000
BATCH_SIZE = 10_000  # W5: users per POST /v1/users/batch
RESULTS = BENCH / "RESULTS.md"
BEGIN, END = "<!-- bench:begin (written by bench/run.py; edit outside these markers) -->", "<!-- bench:end -->"
SIGNUP_PASSWORD = "correct horse battery staple"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- seed data: set-based SQL, deterministic (hashes of the row number, no random()) -----------------
# Every statement is formatted with {n} (an int) only. createdAt is spread over three years in an order
# unrelated to the id, so `sort=-createdAt` pages are real work for a database without the index.

USER_ID = "'c' || substr(md5('user' || i), 1, 24)"
HASH = "(hashtext({0})::bigint & 2147483647)"  # 0..2^31-1, deterministic

SEED_USERS = f"""
INSERT INTO users (id, email, "emailVerified", name, image, password, role, "createdAt", "updatedAt")
SELECT {USER_ID}, 'user' || i || '@bench.example',
       CASE WHEN i % 3 <> 0 THEN created + interval '5 minutes' END,
       'Bench User ' || i,
       CASE WHEN i % 4 = 0 THEN 'https://images.bench.example/' || i || '.png' END,
       NULL,
       (CASE WHEN i % 50 = 0 THEN 'ADMIN' ELSE 'USER' END)::"Role",
       created, created + (i % 90) * interval '1 day'
FROM (SELECT i, timestamp '2023-01-01' + ({HASH.format("'created' || i")} % 94608000) * interval '1 second'
                + (i % 1000) * interval '1 millisecond' AS created
      FROM generate_series(1, {{n}}) AS i) AS s
"""
SEED_ACCOUNTS = f"""
INSERT INTO accounts (id, "userId", type, provider, "providerAccountId", expires_at, token_type, scope)
SELECT 'a' || substr(md5('account' || i), 1, 24), {USER_ID}, 'oauth',
       CASE WHEN i % 4 = 0 THEN 'github' ELSE 'google' END, 'p' || i, 1900000000, 'Bearer', 'openid email profile'
FROM generate_series(1, {{n}}) AS i WHERE i % 2 = 0
"""
SEED_SESSIONS = f"""
INSERT INTO sessions (id, "sessionToken", "userId", expires)
SELECT 's' || substr(md5('session' || i), 1, 24), md5('token' || i) || md5('token2' || i), {USER_ID},
       timestamp '2099-01-01' + (i % 1000) * interval '1 minute'
FROM generate_series(1, {{n}}) AS i
"""
SEED_SUBSCRIPTIONS = f"""
INSERT INTO subscriptions (id, "userId", "stripeCustomerId", "stripeSubscriptionId", "stripePriceId", status,
                           "currentPeriodEnd", "cancelAtPeriodEnd", "createdAt", "updatedAt")
SELECT 'b' || substr(md5('subscription' || i), 1, 24), {USER_ID}, 'cus_bench' || i, 'sub_bench' || i,
       'price_bench_monthly',
       (ARRAY['ACTIVE', 'ACTIVE', 'TRIALING', 'PAST_DUE', 'CANCELLED', 'INACTIVE'])[1 + i % 6]::"SubscriptionStatus",
       timestamp '2099-01-01' + (i % 30) * interval '1 day', i % 10 = 0,
       timestamp '2024-01-01' + (i % 500) * interval '1 day', timestamp '2025-01-01'
FROM generate_series(1, {{n}}) AS i WHERE i % 10 < 3
"""
SEED_NATAL = f"""
INSERT INTO natal_data (id, "userId", "birthDate", location, latitude, longitude, timezone, "createdAt", "updatedAt")
SELECT 'n' || substr(md5('natal' || i), 1, 24), {USER_ID},
       timestamp '1950-01-01' + ({HASH.format("'birth' || i")} % 1800000000) * interval '1 second',
       'City ' || (i % 500), {HASH.format("'lat' || i")} % 17000 / 100.0 - 85,
       {HASH.format("'lon' || i")} % 35000 / 100.0 - 175, 'Europe/Berlin', timestamp '2025-01-01',
       timestamp '2025-01-01'
FROM generate_series(1, {{n}}) AS i WHERE i % 5 < 3
"""
# W4's sign-ups (a few dozen a round). W5 writes into a copy of the database instead: deleting 30,000 users
# is slow here, as each delete scans sessions and accounts for the cascade (no index on their "userId").
CLEAN_BENCH_WRITES = "DELETE FROM users WHERE email LIKE 'bench-w4-%@bench.example'"


@dataclass
class Options:
    users: int
    hot: int
    rounds: int
    duration: int
    warmup: int
    connections: int
    threads: int
    w5_requests: int
    only: tuple[str, ...]
    write: bool
    database_url: str
    redis_url: str
    quick: bool
    profile: Path | None = None


@dataclass
class Run:
    """What one run created (and must remove) and where its files are."""

    tag: str
    admin_url: str
    main_url: str = ""
    seed_url: str = ""
    w5_url: str = ""
    tmp: Path = Path()
    read_token: str = ""
    write_token: str = ""
    cache_prefix: str = ""
    databases: list[str] = field(default_factory=list)
    servers: list["Server"] = field(default_factory=list)
    ids_file: Path = Path()
    tokens_file: Path = Path()
    cursors_file: Path | None = None
    hot_ids: list[str] = field(default_factory=list)
    hot_tokens: list[str] = field(default_factory=list)


def url_for_database(admin_url: str, database: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + database))


# ---- databases -------------------------------------------------------------------------------------

async def create_database(run: Run, name: str, template: str | None = None) -> str:
    assert name.startswith("aw_bench_")
    admin = await asyncpg.connect(run.admin_url)
    try:
        for attempt in range(50):
            try:
                await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
                break
            except asyncpg.ObjectInUseError:  # the template is briefly in use (autovacuum): try again
                if attempt == 49:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
    run.databases.append(name)
    return url_for_database(run.admin_url, name)


async def drop_databases(run: Run) -> None:
    admin = await asyncpg.connect(run.admin_url)
    try:
        for name in run.databases:
            assert name.startswith("aw_bench_"), name
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def apply_seed_migrations(url: str) -> None:
    """Only the seed schema (0001..0008): the database the old platform had, without service indexes."""
    conn = await asyncpg.connect(url)
    try:
        for migration_id in migrate.SEED_MIGRATIONS:
            async with conn.transaction():
                await conn.execute((MIGRATIONS_DIR / f"{migration_id}.sql").read_text())
    finally:
        await conn.close()


async def seed(url: str, n: int, users_only: bool = False) -> None:
    conn = await asyncpg.connect(url)
    try:
        statements = [SEED_USERS] if users_only else [SEED_USERS, SEED_ACCOUNTS, SEED_SESSIONS,
                                                      SEED_SUBSCRIPTIONS, SEED_NATAL]
        async with conn.transaction():
            for sql in statements:
                await conn.execute(sql.format(n=n))
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def pick_hot_set(run: Run, opts: Options) -> None:
    conn = await asyncpg.connect(run.main_url)
    try:
        run.hot_ids = [r[0] for r in await conn.fetch("SELECT id FROM users ORDER BY random() LIMIT $1", opts.hot)]
        run.hot_tokens = [r[0] for r in await conn.fetch(
            'SELECT "sessionToken" FROM sessions ORDER BY random() LIMIT $1', opts.hot)]
    finally:
        await conn.close()
    run.ids_file.write_text("\n".join(run.hot_ids) + "\n")
    run.tokens_file.write_text("\n".join(run.hot_tokens) + "\n")


async def clean_bench_writes(url: str) -> int:
    """Remove the users W4 created, so every round lists and counts the same users."""
    conn = await asyncpg.connect(url)
    try:
        status = await conn.execute(CLEAN_BENCH_WRITES)
        await conn.execute("VACUUM ANALYZE users")
        return int(status.split()[-1])
    finally:
        await conn.close()


def clean_redis(redis_url: str, prefix: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    removed = 0
    try:
        batch = []
        for key in client.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += client.unlink(*batch)
                batch = []
        if batch:
            removed += client.unlink(*batch)
    except redis.RedisError as exc:
        log(f"warning: could not remove the Redis keys {prefix}*: {exc}")
    finally:
        client.close()
    return removed


# ---- servers -----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A subprocess serving HTTP on 127.0.0.1:port, in its own session so it can be stopped as a group."""

    def __init__(self, run: Run, name: str, argv: list[str], env: dict[str, str]):
        self.run, self.name, self.argv, self.env = run, name, argv, env
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = run.tmp / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.run.servers.append(self)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /healthz within 60 s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the service drains and exits 0 (workers: forwarded)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own process group (start_new_session)
            self.proc.wait(timeout=10)
        if self in self.run.servers:
            self.run.servers.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


SETTING_NAMES = {
    "DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL", "ENVIRONMENT", "HOST", "PORT", "DATA_DIR", "SERVICE_TOKENS",
    "STRIPE_WEBHOOK_SECRET", "BCRYPT_ROUNDS", "FIELD_ENCRYPTION_KEY", "POOL_MIN_SIZE", "POOL_MAX_SIZE",
    "STATEMENT_CACHE_SIZE", "LOG_LEVEL", "LOG_QUERIES", "CACHE_PREFIX", "CACHE_ENABLED", "SWEEP_INTERVAL_SECONDS",
}


def service(run: Run, name: str, *, cache: bool, log_level: str = "INFO", workers: int = 1,
            opts: Options, database_url: str | None = None) -> Server:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env.update({
        "DATABASE_URL": database_url or run.main_url,
        "SERVICE_TOKENS": f"bench-read:{run.read_token}:read,bench-write:{run.write_token}:write",
        "LOG_LEVEL": log_level,
        "BCRYPT_ROUNDS": "12",  # production's cost (W4)
        "SWEEP_INTERVAL_SECONDS": "0",
        "CACHE_PREFIX": run.cache_prefix,
        "CACHE_ENABLED": "true" if cache else "false",
        "PYTHONUNBUFFERED": "1",
    })
    if cache:
        env["REDIS_URL"] = opts.redis_url
    argv = [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", "{port}"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return Server(run, name, argv, env)


def baseline(run: Run, name: str, database_url: str) -> Server:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return Server(run, name, [sys.executable, str(BENCH / "baseline_app.py"), "--port", "{port}",
                              "--database-url", database_url], env)


# ---- load ----------------------------------------------------------------------------------------------

class RssSampler(threading.Thread):
    """Max resident set size of a process and its children (workers), sampled every 100 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.max_bytes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                processes = [self.process, *self.process.children(recursive=True)]
                total = 0
                for p in processes:
                    try:
                        total += p.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
                self.max_bytes = max(self.max_bytes, total)
            except psutil.NoSuchProcess:
                return
            self._stop_event.wait(0.1)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.max_bytes / 2**20


def wrk_command(server: Server, script: str, args: list[str], seconds: int, connections: int,
                threads: int) -> list[str]:
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(BENCH / script), server.url + "/", "--", *args]


def parse_wrk(output: str, what: str) -> dict:
    for line in output.splitlines():
        if line.startswith("BENCHJSON "):
            raw = json.loads(line[len("BENCHJSON "):])
            seconds = raw["duration_us"] / 1e6
            errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
            return {"rps": raw["requests"] / seconds, "p50": raw["p50_us"] / 1000, "p99": raw["p99_us"] / 1000,
                    "requests": raw["requests"], "errors": errors, "non2xx": raw["status_errors"]}
    raise RuntimeError(f"wrk gave no result for {what}:\n{output[-2000:]}")


def wrk(server: Server, script: str, args: list[str], seconds: int, connections: int, threads: int,
        what: str) -> dict:
    cmd = wrk_command(server, script, args, seconds, connections, threads)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, cwd=BENCH)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed for {what}: {done.stderr.strip()}")
    return parse_wrk(done.stdout, what)


def measure(server: Server, script: str, args: list[str], opts: Options, what: str, *,
            connections: int | None = None, threads: int | None = None, rss: bool = False) -> dict:
    """Warm-up (discarded), then the measured run; optionally the server's max RSS meanwhile."""
    connections = connections or opts.connections
    threads = threads or opts.threads
    if opts.warmup > 0:
        wrk(server, script, args, opts.warmup, connections, threads, what + " (warm-up)")
    sampler = RssSampler(server.proc.pid) if rss else None
    if sampler:
        sampler.start()
    try:
        result = wrk(server, script, args, opts.duration, connections, threads, what)
    finally:
        if sampler:
            result_rss = sampler.stop()
    if sampler:
        result["rss_mib"] = result_rss
    if opts.profile:
        profile(server, script, args, opts, what, connections, threads)
    bad = result["errors"] + result["non2xx"]
    note = f"  !! {result['non2xx']} non-2xx, {result['errors']} socket errors" if bad else ""
    log(f"  {what:<38} {result['rps']:>9.0f} req/s  p50 {result['p50']:7.2f} ms  p99 {result['p99']:7.2f} ms"
        + (f"  rss {result['rss_mib']:.0f} MiB" if rss else "") + note)
    return result


def profile(server: Server, script: str, args: list[str], opts: Options, what: str, connections: int,
            threads: int) -> None:
    """--profile: one more (unmeasured) run of the workload under py-spy; collapsed stacks to a file."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        log("  --profile: py-spy is not installed (.venv/bin/pip install py-spy); skipped")
        return
    opts.profile.mkdir(parents=True, exist_ok=True)
    out = opts.profile / (re.sub(r"[^A-Za-z0-9]+", "_", f"{server.name} {what}").strip("_") + ".txt")
    recorder = subprocess.Popen([py_spy, "record", "--pid", str(server.proc.pid), "--subprocesses", "--rate", "250",
                                 "--duration", str(opts.duration), "--format", "raw", "--nonblocking",
                                 "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    result = wrk(server, script, args, opts.duration, connections, threads, what + " (profiled)")
    _, err = recorder.communicate(timeout=opts.duration + 60)
    log(f"  profile: {out} (profiled run: {result['requests']} requests, {result['rps']:.0f} req/s)"
        if out.exists() else f"  profile failed: {err.strip()[-300:]}")


# ---- the client side that is not wrk (aiohttp) --------------------------------------------------------------

async def prewarm(server: Server, run: Run) -> None:
    """Cache on: read every id and token of the hot set once, so the measured runs see a warm cache."""
    headers = {"Authorization": f"Bearer {run.read_token}"}
    limit = asyncio.Semaphore(32)
    async with aiohttp.ClientSession(server.url, headers=headers) as http:
        async def user(user_id):
            async with limit, http.get(f"/v1/users/{user_id}") as answer:
                assert answer.status == 200, answer.status
                await answer.read()

        async def session(token):
            async with limit, http.post("/v1/sessions/lookup", json={"sessionToken": token}) as answer:
                assert answer.status == 200, answer.status
                await answer.read()

        await asyncio.gather(*(user(i) for i in run.hot_ids), *(session(t) for t in run.hot_tokens))


async def cache_stats(server: Server, run: Run) -> dict:
    async with aiohttp.ClientSession(server.url) as http:
        async with http.get("/v1/cache/stats", headers={"Authorization": f"Bearer {run.read_token}"}) as answer:
            return await answer.json()


def hit_rate(before: dict, after: dict) -> float:
    hits, misses = after["hits"] - before["hits"], after["misses"] - before["misses"]
    return hits / (hits + misses) if hits + misses else 0.0


async def collect_cursors(server: Server, run: Run) -> list[str]:
    """Walk the list once (count=none) keeping every nextCursor: pages 2..MAX_PAGE, as the offset run."""
    cursors: list[str] = []
    headers = {"Authorization": f"Bearer {run.read_token}"}
    async with aiohttp.ClientSession(server.url, headers=headers) as http:
        cursor = None
        while len(cursors) < MAX_PAGE - 1:
            params = {"sort": "-createdAt", "limit": "20", "count": "none"}
            if cursor:
                params["cursor"] = cursor
            async with http.get("/v1/users", params=params) as answer:
                assert answer.status == 200, await answer.text()
                cursor = (await answer.json())["pagination"]["nextCursor"]
            if not cursor:
                break
            cursors.append(cursor)
    return cursors


async def batch_inserts(server: Server, run: Run, round_no: int, requests: int) -> dict:
    """W5: POST /v1/users/batch with 10,000 users (no passwords), timed one request at a time."""
    encode = msgspec.json.Encoder().encode
    rates = []
    headers = {"Authorization": f"Bearer {run.write_token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(server.url, headers=headers) as http:
        for request_no in range(requests):
            body = encode({"users": [
                {"email": f"bench-w5-{run.tag}-{round_no}-{request_no}-{i}@bench.example", "name": f"Batch User {i}"}
                for i in range(BATCH_SIZE)
            ]})
            started = time.perf_counter()
            async with http.post("/v1/users/batch", data=body) as answer:
                text = await answer.text()
            elapsed = time.perf_counter() - started
            if answer.status != 200 or msgspec.json.decode(text).get("count") != BATCH_SIZE:
                raise RuntimeError(f"W5 batch answered {answer.status}: {text[:300]}")
            rates.append(BATCH_SIZE / elapsed)
    result = {"rows_per_s": statistics.median(rates), "all": rates, "body_kib": len(body) / 1024}
    log(f"  {'W5 batch of 10,000':<38} {result['rows_per_s']:>9.0f} rows/s (median of "
        f"{', '.join(f'{r:.0f}' for r in rates)}; body {result['body_kib']:.0f} KiB)")
    return result


# ---- one round -------------------------------------------------------------------------------------------

def one_round(run: Run, opts: Options, round_no: int) -> dict:
    r: dict[str, dict] = {}
    want = set(opts.only)
    user_args = [str(run.ids_file), run.read_token]
    session_args = [str(run.tokens_file), run.read_token]
    log(f"round {round_no}")

    if "W1" in want:
        with baseline(run, "baseline-user", run.main_url) as server:
            r["base.w1"] = measure(server, "w1_user.lua", user_args, opts, "baseline: W1 query, bare")
    if "W3" in want:
        with baseline(run, "baseline-list", run.seed_url) as server:
            r["base.list"] = measure(server, "w3_offset.lua", [str(MAX_PAGE), "exact", run.read_token], opts,
                                     "baseline: OFFSET + COUNT(*), seed schema")

    if want & {"W1", "W2", "W3", "W4", "MP"}:
        with service(run, "service-off", cache=False, opts=opts) as server:
            if want & {"W1", "W4", "MP"}:
                r["w1.off"] = measure(server, "w1_user.lua", user_args, opts, "W1 cache off", rss=True)
            if "W2" in want:
                r["w2.off"] = measure(server, "w2_session.lua", session_args, opts, "W2 cache off")
            if "W3" in want:
                if run.cursors_file is None:
                    cursors = asyncio.run(collect_cursors(server, run))
                    run.cursors_file = run.tmp / "cursors.txt"
                    run.cursors_file.write_text("\n".join(cursors) + "\n")
                for mode in ("exact", "estimated"):
                    r[f"w3.offset.{mode}"] = measure(server, "w3_offset.lua", [str(MAX_PAGE), mode, run.read_token],
                                                     opts, f"W3 offset, count={mode}")
                r["w3.cursor"] = measure(server, "w3_cursor.lua", [str(run.cursors_file), "none", run.read_token],
                                         opts, "W3 cursor, count=none")
            if "W4" in want:
                signup_seconds = opts.warmup + opts.duration + 2
                signups = subprocess.Popen(
                    wrk_command(server, "w4_create.lua", [f"{run.tag}-{round_no}", run.write_token], signup_seconds,
                                2, 1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=BENCH)
                try:
                    r["w4.w1"] = measure(server, "w1_user.lua", user_args, opts, "W1 cache off, during W4")
                finally:
                    out, err = signups.communicate(timeout=signup_seconds + 60)
                r["w4.create"] = parse_wrk(out, "W4 sign-ups")
                log(f"  {'W4 sign-ups (bcrypt 12, 2 connections)':<38} {r['w4.create']['rps']:>9.1f} req/s  "
                    f"p50 {r['w4.create']['p50']:7.1f} ms  p99 {r['w4.create']['p99']:7.1f} ms"
                    + (f"  !! {r['w4.create']['non2xx']} non-2xx" if r["w4.create"]["non2xx"] else ""))

    if "W1" in want:
        with service(run, "service-quiet", cache=False, log_level="WARNING", opts=opts) as server:
            r["w1.quiet"] = measure(server, "w1_user.lua", user_args, opts, "W1 cache off, LOG_LEVEL=WARNING")

    if want & {"W1", "W2"}:
        with service(run, "service-on", cache=True, opts=opts) as server:
            asyncio.run(prewarm(server, run))
            if "W1" in want:
                before = asyncio.run(cache_stats(server, run))
                r["w1.on"] = measure(server, "w1_user.lua", user_args, opts, "W1 cache on (Redis, warm)", rss=True)
                r["w1.on"]["hit_rate"] = hit_rate(before, asyncio.run(cache_stats(server, run)))
            if "W2" in want:
                before = asyncio.run(cache_stats(server, run))
                r["w2.on"] = measure(server, "w2_session.lua", session_args, opts, "W2 cache on (Redis, warm)")
                r["w2.on"]["hit_rate"] = hit_rate(before, asyncio.run(cache_stats(server, run)))

    if "W5" in want:  # same configuration as "cache on", on the copy of the seeded database
        with service(run, "service-w5", cache=True, opts=opts, database_url=run.w5_url) as server:
            r["w5"] = asyncio.run(batch_inserts(server, run, round_no, opts.w5_requests))

    if "MP" in want:
        with service(run, "service-workers2", cache=False, workers=2, opts=opts) as server:
            r["mp.2"] = measure(server, "w1_user.lua", user_args, opts, "W1 cache off, --workers 2", rss=True)

    if "W4" in want:
        t = time.monotonic()
        removed = asyncio.run(clean_bench_writes(run.main_url))
        log(f"  removed the {removed} users W4 signed up ({time.monotonic() - t:.1f} s)")
    return r


# ---- report ----------------------------------------------------------------------------------------------

ROWS = (
    ("base.w1", "Baseline: bare aiohttp + asyncpg, W1 query"),
    ("w1.off", "W1 GET /v1/users/{id}, cache off"),
    ("w1.quiet", "W1 cache off, LOG_LEVEL=WARNING (no access log)"),
    ("w1.on", "W1 cache on (Redis, warm)"),
    ("w2.off", "W2 POST /v1/sessions/lookup, cache off"),
    ("w2.on", "W2 cache on (Redis, warm)"),
    ("base.list", "Lists baseline: seed schema, OFFSET + COUNT(*)"),
    ("w3.offset.exact", "W3 offset page, count=exact"),
    ("w3.offset.estimated", "W3 offset page, count=estimated"),
    ("w3.cursor", "W3 cursor page, count=none"),
    ("w4.w1", "W1 cache off while W4 signs up"),
    ("w4.create", "W4 POST /v1/users, bcrypt 12, 2 connections"),
    ("mp.2", "W1 cache off, --workers 2"),
)


def fmt_rps(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def figures_table(rounds: list[dict]) -> str:
    head = "| workload | " + " | ".join(f"r{i} req/s | r{i} p50 ms | r{i} p99 ms" for i in range(1, len(rounds) + 1)) + " |"
    lines = [head, "|---|" + "---:|" * (3 * len(rounds))]
    for key, label in ROWS:
        if not any(key in r for r in rounds):
            continue
        cells = []
        for r in rounds:
            x = r.get(key)
            if x is None:
                cells += ["-", "-", "-"]
                continue
            flag = " (!)" if x["errors"] or x["non2xx"] else ""
            cells += [fmt_rps(x["rps"]) + flag, f"{x['p50']:.2f}", f"{x['p99']:.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if any("w5" in r for r in rounds):
        cells = []
        for r in rounds:
            x = r.get("w5")
            cells += ([f"{x['rows_per_s']:,.0f} rows/s", "", ""] if x else ["-", "", ""])
        lines.append("| W5 POST /v1/users/batch, 10,000 users per request (median) | " + " | ".join(cells) + " |")
    extra = []
    for key, label in (("w1.off", "service RSS max during W1, cache off"), ("w1.on", "service RSS max during W1, cache on"),
                       ("mp.2", "RSS max during W1, --workers 2 (parent + 2 workers)")):
        if any(key in r and "rss_mib" in r[key] for r in rounds):
            extra.append(f"- {label}: " + ", ".join(f"r{i} {r[key]['rss_mib']:.0f} MiB"
                                                    for i, r in enumerate(rounds, 1) if key in r))
    for key, label in (("w1.on", "cache hit rate during W1 cache on"), ("w2.on", "cache hit rate during W2 cache on")):
        if any(key in r for r in rounds):
            extra.append(f"- {label}: " + ", ".join(f"r{i} {r[key]['hit_rate']:.1%}"
                                                    for i, r in enumerate(rounds, 1) if key in r))
    if any("w5" in r for r in rounds):
        extra.append("- W5 every request (rows/s): " + "; ".join(
            f"r{i} " + ", ".join(f"{v:,.0f}" for v in r["w5"]["all"]) for i, r in enumerate(rounds, 1) if "w5" in r))
    if any(x["errors"] or x["non2xx"] for r in rounds for k, x in r.items() if isinstance(x, dict) and "errors" in x):
        extra.append("- (!) marks a run with socket errors or non-2xx answers; see the log above.")
    return "\n".join(lines) + ("\n\n" + "\n".join(extra) if extra else "")


def targets(rounds: list[dict]) -> list[tuple[str, list[str], str]]:
    """(target, per-round figure, verdict) for every target whose figures were measured."""
    out = []

    def ratio(name, num, den, minimum, what=lambda r, k: r[k]["rps"]):
        if not all(num in r and den in r for r in rounds):
            return
        values = [what(r, num) / what(r, den) for r in rounds]
        out.append((name, [f"{v:.2f}x" for v in values], verdict([v >= minimum for v in values])))

    ratio("W1 uncached (auth, INFO access log, metrics) >= 0.9x bare baseline", "w1.off", "base.w1", 0.9)
    ratio("W1 cached >= 1.5x W1 uncached", "w1.on", "w1.off", 1.5)
    ratio("W2 cached >= 1.5x W1 uncached (issue 8)", "w2.on", "w1.off", 1.5)
    ratio("W2 cached (warm) >= 1.5x W2 uncached (issue 6)", "w2.on", "w2.off", 1.5)
    if all("w4.w1" in r and "w1.off" in r for r in rounds):
        values = [r["w4.w1"]["p99"] / r["w1.off"]["p99"] for r in rounds]
        out.append(("W4: W1 p99 while passwords hash <= 2x W1 p99 alone",
                    [f"{v:.2f}x ({r['w4.w1']['p99']:.1f} vs {r['w1.off']['p99']:.1f} ms)" for v, r in zip(values, rounds)],
                    verdict([v <= 2 for v in values])))
    if all("w5" in r for r in rounds):
        out.append(("W5 >= 20,000 rows/s", [f"{r['w5']['rows_per_s']:,.0f}" for r in rounds],
                    verdict([r["w5"]["rows_per_s"] >= 20000 for r in rounds])))
    if all("w1.off" in r and "rss_mib" in r["w1.off"] for r in rounds):
        peak = [max(r[k]["rss_mib"] for k in ("w1.off", "w1.on") if k in r) for r in rounds]
        out.append(("memory: service RSS under W1 < 150 MiB (max of cache off/on)", [f"{v:.0f} MiB" for v in peak],
                    verdict([v < 150 for v in peak])))
    ratio("lists: offset page with exact total >= 10x seed OFFSET + COUNT(*)", "w3.offset.exact", "base.list", 10)
    ratio("lists: offset page with estimated total >= 10x seed OFFSET + COUNT(*)", "w3.offset.estimated",
          "base.list", 10)
    ratio("lists: cursor page >= 10x seed OFFSET + COUNT(*)", "w3.cursor", "base.list", 10)
    if all("mp.2" in r and "w1.off" in r for r in rounds):
        values = [r["mp.2"]["rps"] / r["w1.off"]["rps"] for r in rounds]
        out.append(("(no target) --workers 2 vs 1, W1 cache off", [f"{v:.2f}x" for v in values], "measured"))
    return out


def verdict(oks: list[bool]) -> str:
    return "met" if all(oks) else ("missed" if not any(oks) else "mixed (met in some rounds)")


def targets_table(rounds: list[dict]) -> str:
    lines = ["| target | " + " | ".join(f"round {i}" for i in range(1, len(rounds) + 1)) + " | verdict |",
             "|---|" + "---:|" * len(rounds) + "---|"]
    for name, values, result in targets(rounds):
        lines.append(f"| {name} | " + " | ".join(values) + f" | **{result}** |")
    return "\n".join(lines)


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        wrk_version = " ".join(wrk_version.split()[:3])
    except OSError:
        wrk_version = "?"
    try:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    import aiohttp as aiohttp_module

    return {"nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(), "cpu": cpu,
            "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB", "kernel": platform.release(),
            "python": platform.python_version(), "wrk": wrk_version, "loop": loop,
            "aiohttp": aiohttp_module.__version__, "asyncpg": asyncpg.__version__}


def report(rounds: list[dict], opts: Options, info: dict, elapsed: float) -> str:
    m = info["machine"]
    exe = sys.executable
    exe = os.path.relpath(exe, ROOT) if exe.startswith(str(ROOT)) else exe
    command = " ".join([exe, "bench/run.py", *sys.argv[1:]])
    return "\n".join([
        f"Date: {info['date']}  ",
        f"Machine: {m['nproc']} cores (`nproc`), {m['cpu']}, {m['memory']} RAM, Linux {m['kernel']}; load generator, "
        f"service and databases share it.  ",
        f"Stack: Python {m['python']} ({m['loop']}), aiohttp {m['aiohttp']}, asyncpg {m['asyncpg']}, "
        f"PostgreSQL {info['postgres']}, Redis {info['redis']}, {m['wrk']}.  ",
        f"Command: `{command}` (took {elapsed / 60:.1f} min; 1-min load average {info['load']:.2f} before the "
        f"first round, {os.getloadavg()[0]:.2f} at the end)  ",
        f"Setup: {opts.users:,} users (+ accounts, sessions, subscriptions, natal data); W1/W2 draw from a hot set of "
        f"{opts.hot:,} random users/sessions; wrk -t{opts.threads} -c{opts.connections}, {opts.warmup} s warm-up then "
        f"{opts.duration} s, {opts.rounds} round(s); W4 wrk -t1 -c2 alongside W1; W5 {opts.w5_requests} request(s) "
        f"per round. Service: LOG_LEVEL=INFO (JSON access line per request to a file), auth and metrics on, "
        f"BCRYPT_ROUNDS=12, pool 10, one process unless `--workers 2`.",
        "",
        "### Figures",
        "",
        figures_table(rounds),
        "",
        "### Targets",
        "",
        targets_table(rounds),
    ])


def write_results(block: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else ""
    generated = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + generated + text[text.index(END) + len(END):]
    else:
        text = ("# Benchmark results\n\nThe block below is rewritten by `bench/run.py` (full runs); the notes after it "
                "are written by hand.\n\n" + generated + "\n\n## What bounds the missed targets\n\n(to be written)\n")
    RESULTS.write_text(text)


async def server_versions(run: Run, redis_url: str) -> tuple[str, str]:
    conn = await asyncpg.connect(run.admin_url)
    try:
        postgres = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    try:
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=2)
        redis_version = client.info("server")["redis_version"]
        client.close()
    except Exception:  # noqa: BLE001 - only a label
        redis_version = "?"
    return postgres.split()[0], redis_version


# ---- main ------------------------------------------------------------------------------------------------

def parse_args(argv=None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 10,000 users, 1 round, 3 s, nothing written")
    p.add_argument("--rounds", type=int)
    p.add_argument("--duration", type=int, help="measured seconds per workload (default 15)")
    p.add_argument("--warmup", type=int, help="warm-up seconds before each measured run (default 3)")
    p.add_argument("--only", help=f"comma list of {','.join(WORKLOADS)} (default all)")
    p.add_argument("--users", type=int, help="users to seed (default 100,000)")
    p.add_argument("--hot", type=int, help="W1/W2 hot set size (default 10,000)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--w5-requests", type=int, help="timed W5 requests per round (default 3)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="also run each service workload once more under py-spy, collapsed stacks into DIR")
    p.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                   help="update bench/RESULTS.md (default: only for a full run of every workload)")
    a = p.parse_args(argv)
    only = tuple(WORKLOADS) if not a.only else tuple(x.strip().upper() for x in a.only.split(",") if x.strip())
    unknown = [x for x in only if x not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    users = a.users or (10_000 if a.quick else 100_000)
    if users < MAX_PAGE * 20 + 20:
        p.error(f"--users must be at least {MAX_PAGE * 20 + 20} (the lists go {MAX_PAGE} pages deep)")
    full = not a.quick and not a.only and not a.profile
    return Options(
        users=users, hot=min(users, a.hot or (2_000 if a.quick else 10_000)),
        rounds=a.rounds or (1 if a.quick else 2), duration=a.duration or (3 if a.quick else 15),
        warmup=a.warmup if a.warmup is not None else (1 if a.quick else 3),
        connections=a.connections, threads=a.threads,
        w5_requests=a.w5_requests or (1 if a.quick else 3), only=only,
        write=full if a.write is None else a.write,
        database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        redis_url=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL, quick=a.quick,
        profile=a.profile.resolve() if a.profile else None)


def main(argv=None) -> int:
    opts = parse_args(argv)
    if not shutil.which("wrk"):
        print("error: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 1
    started = time.monotonic()
    tag = f"{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(3)}"
    run = Run(tag=tag, admin_url=opts.database_url, read_token=secrets.token_urlsafe(24),
              write_token=secrets.token_urlsafe(24), cache_prefix=f"aw_bench_{tag}:")
    run.tmp = Path(tempfile.mkdtemp(prefix=f"aw_bench_{tag}_"))
    run.ids_file, run.tokens_file = run.tmp / "user_ids.txt", run.tmp / "session_tokens.txt"

    def on_sigterm(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    rounds: list[dict] = []
    try:
        log(f"run {tag}: creating database aw_bench_{tag}")
        run.main_url = asyncio.run(create_database(run, f"aw_bench_{tag}"))
        applied = migrate.apply(run.main_url)
        log(f"applied {len(applied)} migrations; seeding {opts.users:,} users with their rows")
        t = time.monotonic()
        asyncio.run(seed(run.main_url, opts.users))
        log(f"seeded and analyzed in {time.monotonic() - t:.1f} s")
        if "W5" in opts.only:  # W5's 10,000-user batches go to a copy, so the main database stays as seeded
            run.w5_url = asyncio.run(create_database(run, f"aw_bench_{tag}_w5", template=f"aw_bench_{tag}"))
        if "W3" in opts.only:
            run.seed_url = asyncio.run(create_database(run, f"aw_bench_{tag}_seed"))
            asyncio.run(apply_seed_migrations(run.seed_url))
            t = time.monotonic()
            asyncio.run(seed(run.seed_url, opts.users, users_only=True))
            log(f"seed-schema database (0001..0008 only, users) seeded in {time.monotonic() - t:.1f} s")
        asyncio.run(pick_hot_set(run, opts))
        info = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                "load": os.getloadavg()[0]}
        info["postgres"], info["redis"] = asyncio.run(server_versions(run, opts.redis_url))
        for round_no in range(1, opts.rounds + 1):
            rounds.append(one_round(run, opts, round_no))
        elapsed = time.monotonic() - started
        block = report(rounds, opts, info, elapsed)
        print("\n" + block + "\n")
        if opts.write:
            write_results(block)
            log(f"updated {RESULTS.relative_to(ROOT)}")
        return 0
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for server in list(run.servers):
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - keep cleaning
                log(f"warning: stopping {server.name}: {exc}")
        try:
            asyncio.run(drop_databases(run))
        except Exception as exc:  # noqa: BLE001
            log(f"warning: could not drop {', '.join(run.databases)}: {exc}")
        removed = clean_redis(opts.redis_url, run.cache_prefix)
        shutil.rmtree(run.tmp, ignore_errors=True)
        log(f"cleaned up: dropped {len(run.databases)} database(s), {removed} Redis key(s); "
            f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
