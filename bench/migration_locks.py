"""What each service-owned migration costs a live database: its duration, and the longest a writer waited.

Builds a scratch database with the seed migrations, fills it (default 1,000,000 users, each with one
account and one session), then applies the later migrations one at a time with `migrate`, while a writer
updates a random user (and inserts a session) every 10 ms; reports per migration the wall time and the
writer's longest statement. Then rolls them back the same way. For docs/operations.md's runbook.

  DATABASE_URL=postgresql://root@127.0.0.1:5432/postgres nice .venv/bin/python bench/migration_locks.py [USERS]
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service import MIGRATIONS_DIR, migrate
from tests.databases import create_database, drop_database

SEED_LAST = "0008_chart_cache"


async def fill(url: str, users: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"""
            INSERT INTO users (id, email, name, "createdAt", "updatedAt")
              SELECT 'u' || i, 'u' || i || '@example.com', 'n' || i, now() - i * interval '1 second', now()
              FROM generate_series(1, {users}) i;
            INSERT INTO accounts (id, "userId", type, provider, "providerAccountId")
              SELECT 'a' || i, 'u' || i, 'oauth', 'github', i::text FROM generate_series(1, {users}) i;
            INSERT INTO sessions (id, "sessionToken", "userId", expires)
              SELECT 's' || i, 't' || i, 'u' || i, now() + interval '1 day' FROM generate_series(1, {users}) i;
        """)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def writer(url: str, users: int, stop: asyncio.Event, worst: list[float]) -> None:
    conn = await asyncpg.connect(url)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            started = time.perf_counter()
            await conn.execute('UPDATE users SET name = $1, "updatedAt" = now() WHERE id = $2', f"w{n}",
                               f"u{1 + n * 7919 % users}")
            await conn.execute('INSERT INTO sessions (id, "sessionToken", "userId", expires) '
                               "VALUES ($1, $1, 'u1', now())", f"bench-{uuid.uuid4().hex}")
            worst[0] = max(worst[0], time.perf_counter() - started)
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def timed(url: str, users: int, action) -> tuple[float, float]:
    stop, worst = asyncio.Event(), [0.0]
    task = asyncio.create_task(writer(url, users, stop, worst))
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    await asyncio.to_thread(action)
    took = time.perf_counter() - started
    stop.set()
    await task
    return took, worst[0]


def upto(folder: Path, last_id: str) -> Path:
    target = Path(tempfile.mkdtemp(prefix="aw-bench-migrations-"))
    for path in folder.glob("*.sql"):
        if path.name.split(".")[0] <= last_id:
            shutil.copy2(path, target / path.name)
    return target


async def main() -> None:
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    url = await create_database("aw_bench_locks")
    try:
        migrate.apply(url)
        later = sorted(p.name[:-4] for p in MIGRATIONS_DIR.glob("*.sql")
                       if not p.name.endswith(".rollback.sql") and p.name[:-4] > SEED_LAST)
        migrate.rollback(url, count=len(later))
        started = time.perf_counter()
        await fill(url, users)
        print(f"filled {users:,} users, accounts, sessions in {time.perf_counter() - started:.1f} s", flush=True)
        print("| migration | apply s | writer's longest statement while applying, ms |")
        print("|---|---:|---:|")
        full = migrate.MIGRATIONS_DIR
        for migration_id in later:
            # migrate sees the files up to this one only, so it applies exactly this one.
            migrate.MIGRATIONS_DIR = upto(full, migration_id)
            took, worst = await timed(url, users, lambda: migrate.apply(url))
            print(f"| {migration_id} | {took:.2f} | {worst * 1000:.0f} |", flush=True)
        migrate.MIGRATIONS_DIR = full
        print("\n| rollback of | s | writer's longest statement, ms |")
        print("|---|---:|---:|")
        for migration_id in reversed(later):
            took, worst = await timed(url, users, lambda: migrate.rollback(url, count=1))
            print(f"| {migration_id} | {took:.2f} | {worst * 1000:.0f} |", flush=True)
    finally:
        await drop_database(url)


if __name__ == "__main__":
    asyncio.run(main())
