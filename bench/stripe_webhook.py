"""Stripe webhook throughput (issue 12): events/s with 0 and 1,000,000 stored events, sequential and 8
concurrent senders, and one subscription's 1,000th event against its first.

    nice .venv/bin/python bench/stripe_webhook.py [--stored 1000000] [--events 1500] [--users 10000] [--rounds 3]

Creates two databases (aw_bench_stripe_*) on DATABASE_URL's server, one with no stored events and one with
1,000,000 (generate_series), and drops them at the end; runs one service per database as a subprocess
(`python -m service serve`, cache off, LOG_LEVEL=WARNING, one process each), alternates measuring rounds
between them, and sends
full customer.subscription.updated events (tests/stripe_gen.py, API version 2025-09-30.clover, ~5 kB
each) signed like Stripe, each changing the state of a subscription linked to a user, so every event
is stored, compared with the stored state and written to the user's row.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres")

import aiohttp
import asyncpg
from tracing_overhead import export_tree  # noqa: E402 (bench/ is on sys.path as this script's folder)

from service import migrate
from tests.databases import create_database, drop_database
from tests.stripe_gen import StripeWorld, SubscriptionLife

SECRET = "whsec_bench"
VERSION = "2025-09-30.clover"
STATUSES = ("active", "past_due", "active", "unpaid")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, port: int, log: Path, root: Path = ROOT) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=url, STRIPE_WEBHOOK_SECRET=SECRET, SERVICE_TOKENS="bench:bench-token:read",
               CACHE_ENABLED="false", LOG_LEVEL="WARNING", SWEEP_INTERVAL_SECONDS="0", REDIS_URL="")
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], cwd=root, env=env,
                                stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def signed(body: bytes) -> dict:
    t = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={digest}", "Content-Type": "application/json"}


class Subscriptions:
    """Linked subscriptions (seeded by SQL) and a generator of their next events."""

    def __init__(self, users: int, seed: str):
        self.world = StripeWorld(VERSION, t0=1_760_000_000, seed=seed)
        self.lives = []
        for n in range(users):
            life = SubscriptionLife(self.world, customer=f"cus_bench_{n}")
            life.obj["id"] = f"sub_bench_{n}"
            self.lives.append(life)
        self.step = 0

    def next_events(self, count: int, only: int | None = None) -> list[bytes]:
        rng = random.Random(f"{self.world.now}-{count}")
        out = []
        for _ in range(count):
            self.world.tick()  # each event one second after the previous: every one changes the state
            life = self.lives[only if only is not None else rng.randrange(len(self.lives))]
            self.step += 1
            evt = life.change(status=STATUSES[self.step % len(STATUSES)], price=f"price_{self.step}")
            out.append(json.dumps(evt, separators=(",", ":")).encode())
        return out


async def seed_links(url: str, users: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"""
            INSERT INTO users (id, email) SELECT 'u_bench_' || i, 'bench' || i || '@example.com'
            FROM generate_series(0, {users - 1}) i;
            INSERT INTO subscriptions (id, "userId", "stripeCustomerId", "stripeSubscriptionId", status)
            SELECT 's_bench_' || i, 'u_bench_' || i, 'cus_bench_' || i, 'sub_bench_' || i, 'ACTIVE'
            FROM generate_series(0, {users - 1}) i;
            ANALYZE users; ANALYZE subscriptions;""")
    finally:
        await conn.close()


async def seed_stored(url: str, stored: int) -> float:
    """`stored` old events (applied, ~1 kB payloads) of 100,000 other subscriptions, set-based."""
    conn = await asyncpg.connect(url)
    started = time.perf_counter()
    try:
        await conn.execute(f"""
            INSERT INTO stripe_events (id, type, created, "stripeSubscriptionId", "stripeCustomerId", payload,
                                       outcome, "receivedAt", "appliedAt")
            SELECT 'evt_old_' || i, 'customer.subscription.updated', 1700000000 + i, 'sub_old_' || (i % 100000),
                   'cus_old_' || (i % 100000),
                   jsonb_build_object('id', 'evt_old_' || i, 'type', 'customer.subscription.updated',
                                      'data', jsonb_build_object('object', jsonb_build_object(
                                          'id', 'sub_old_' || (i % 100000), 'status', 'active',
                                          'padding', repeat('x', 900)))),
                   'applied', (now() AT TIME ZONE 'UTC') - (i % 20) * interval '1 day',
                   (now() AT TIME ZONE 'UTC') - (i % 20) * interval '1 day'
            FROM generate_series(1, {stored}) i;
            INSERT INTO stripe_subscription_state ("stripeSubscriptionId", "stripeCustomerId", status,
                                                   "lastEventCreated", "lastEventId", "eventType", previous)
            SELECT 'sub_old_' || i, 'cus_old_' || i, 'active', 1700000000 + i, 'evt_old_' || i,
                   'customer.subscription.updated', '{{}}'::jsonb
            FROM generate_series(0, 99999) i;""")
        await conn.execute("VACUUM ANALYZE stripe_events")
        await conn.execute("VACUUM ANALYZE stripe_subscription_state")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def send(session, base: str, bodies: list[bytes], senders: int) -> tuple[float, list[float]]:
    """events/s and each event's latency (ms); every answer must be 200 and applied."""
    queue = list(reversed(bodies))
    latencies: list[float] = []
    outcomes: dict[str, int] = {}

    async def sender():
        while queue:
            body = queue.pop()
            started = time.perf_counter()
            async with session.post(base + "/v1/stripe/webhook", data=body, headers=signed(body)) as r:
                answer = await r.json()
                assert r.status == 200, answer
            latencies.append((time.perf_counter() - started) * 1000)
            outcomes[answer["outcome"]] = outcomes.get(answer["outcome"], 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    elapsed = time.perf_counter() - started
    # Concurrent senders may deliver a subscription's older event after its newer one: ignored, rightly.
    assert set(outcomes) <= {"applied", "ignored"} and outcomes.get("ignored", 0) <= len(bodies) // 100, outcomes
    return len(bodies) / elapsed, latencies


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(base: str, subs: Subscriptions, events: int) -> dict:
    out = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:
        await send(session, base, subs.next_events(200), 1)  # warm-up (prepared statements, pool)
        for name, senders in (("sequential", 1), ("8 senders", 8)):
            rate, lat = await send(session, base, subs.next_events(events), senders)
            out[name] = {"events/s": round(rate, 1), "p50 ms": round(p(lat, 0.5), 2), "p99 ms": round(p(lat, 0.99), 2)}
    return out


async def one_subscription(base: str, subs: Subscriptions) -> dict:
    """1,000 events of one subscription, sequential: the first 100 against the last 100."""
    async with aiohttp.ClientSession() as session:
        bodies = subs.next_events(1000, only=0)
        _, lat = await send(session, base, bodies, 1)
    first, last = lat[:100], lat[-100:]
    return {"events 1-100 median ms": round(p(first, 0.5), 2), "events 901-1000 median ms": round(p(last, 0.5), 2),
            "1,000th event ms": round(lat[-1], 2), "ratio last/first (median)": round(p(last, 0.5) / p(first, 0.5), 2)}


async def commit_floor(url: str, count: int = 500) -> float:
    """Sequential one-row INSERT transactions/s from this process: the durable-commit (fsync) ceiling of
    any sequential webhook on this machine right now."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE bench_floor (x int)")
        started = time.perf_counter()
        for n in range(count):
            async with conn.transaction():
                await conn.execute("INSERT INTO bench_floor VALUES ($1)", n)
        rate = count / (time.perf_counter() - started)
        await conn.execute("DROP TABLE bench_floor")
        return round(rate, 1)
    finally:
        await conn.close()


async def set_synchronous_commit(url: str, value: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = {value}')
    finally:
        await conn.close()


async def main(stored: int, events: int, users: int, rounds: int, base_revision: str | None = None) -> dict:
    """Two databases side by side, one with no stored events and one with `stored`, each behind its own
    server; rounds alternate between them (E F, F E, ...) so a drifting machine load hits both alike.
    With `base_revision`, a third empty database behind the service as of that revision joins the
    rounds (its own migrations), for a before/after ratio taken under the same load."""
    names = ["empty", "full"] + (["base"] if base_revision else [])
    urls = {name: await create_database("aw_bench_stripe") for name in names}
    log = Path("/tmp") / f"aw_bench_stripe_{os.getpid()}.log"
    roots = {name: ROOT for name in names}
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, url in urls.items():
            if name == "base":
                roots["base"] = export_tree(base_revision, Path("/tmp") / f"aw_bench_stripe_base_{os.getpid()}")
                subprocess.run([sys.executable, "-m", "service", "migrate"], cwd=roots["base"], check=True,
                               env=dict(os.environ, DATABASE_URL=url), capture_output=True)
            else:
                await asyncio.to_thread(migrate.apply, url)
            await seed_links(url, users)
        result: dict = {"seeded 1M in s": round(await seed_stored(urls["full"], stored), 1)}
        subs = {name: Subscriptions(users, "bench") for name in urls}
        ports = {name: free_port() for name in urls}
        for name, url in urls.items():
            procs[name] = await asyncio.to_thread(start_server, url, ports[name], log, roots[name])
        base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        result["commit floor before (1-row INSERT transactions/s, sequential)"] = await commit_floor(urls["empty"])
        rates: dict = {name: [] for name in names}
        label = {"empty": "empty", "full": f"{stored:,} stored", "base": f"empty, service as of {base_revision}"}
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                figures = await measure(base[name], subs[name], events)
                rates[name].append(figures)
                result[f"round {r + 1} {label[name]}"] = figures
        pairs = [("stored/empty", "full", "empty")] + ([("this/base", "empty", "base")] if base_revision else [])
        for title, top, bottom in pairs:
            for mode in ("sequential", "8 senders"):
                ratios = [t[mode]["events/s"] / b[mode]["events/s"] for t, b in zip(rates[top], rates[bottom])]
                key = "" if title == "stored/empty" else f" {title}"
                result[f"ratio{key} {mode} per round ({title})"] = [round(x, 3) for x in ratios]
                result[f"ratio{key} {mode} median"] = round(sorted(ratios)[len(ratios) // 2], 3)
        result["one subscription, empty"] = await one_subscription(base["empty"], subs["empty"])
        result[f"one subscription, {stored:,} stored"] = await one_subscription(base["full"], subs["full"])
        result["commit floor after"] = await commit_floor(urls["empty"])
        # Diagnostic only (never a production setting: an acknowledged event could be lost in a crash):
        # the full database with commits not waiting for the disk, i.e. what the service itself costs.
        await set_synchronous_commit(urls["full"], "off")
        stop_server(procs.pop("full"))
        procs["full"] = await asyncio.to_thread(start_server, urls["full"], ports["full"], log)
        result[f"{stored:,} stored, synchronous_commit=off (diagnostic)"] = await measure(
            base["full"], subs["full"], events)
        return result
    finally:
        for proc in procs.values():
            await asyncio.to_thread(stop_server, proc)
        for url in urls.values():
            await drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", default=None, help="git revision to measure alongside (before/after ratio)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.stored, args.events, args.users, args.rounds, args.base)), indent=2))
