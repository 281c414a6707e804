"""The sweeps of expired rows (service/data/sweeps.py): both orders delete exactly the expired rows, a backlog
goes in physical order (windows of heap blocks), and the pause between batches is at least as long as the
batch took. (tests/test_list_cost.py has the sweep through the app, with metrics, and the plans.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import asyncpg
import pytest

from service import migrate
from service.app import create_app
from service.data import sweeps
from service.deps import DEPS
from service.queries import Q
from tests.conftest import make_settings
from tests.databases import create_database, drop_database

NOW = "(now() AT TIME ZONE 'UTC')"
# Each table with rows of both kinds: expired (every other one) and live, in an expiry order unrelated to
# where the rows are stored (a hash of the row number), as in a table whose free space is reused.
SEED = {
    "sessions": """
        INSERT INTO users (id, email, "updatedAt") VALUES ('u1', 'u1@t.test', now()) ON CONFLICT DO NOTHING;
        INSERT INTO sessions (id, "sessionToken", "userId", expires)
          SELECT 's' || i, md5('a' || i) || md5('b' || i), 'u1',
                 {expiry}
          FROM generate_series(1, {rows}) i""",
    "verification_tokens": """
        INSERT INTO verification_tokens (identifier, token, expires)
          SELECT 'u' || i || '@t.test', md5('t' || i),
                 {expiry}
          FROM generate_series(1, {rows}) i""",
    "chart_cache": """
        INSERT INTO chart_cache (id, "chartType", "chartData", "expiresAt")
          SELECT 'c' || i, 'HORARY', '{{}}',
                 {expiry}
          FROM generate_series(1, {rows}) i""",
}
# expired up to 18 hours ago, or live for a day and more (no row expires while a test runs)
EXPIRY = ("{now} + CASE WHEN {expired} THEN -((hashtext('e' || i) & 65535) + 1) * interval '1 s' "
          "ELSE interval '1 day' + (hashtext('e' || i) & 65535) * interval '1 s' END")
KEY = {"sessions": "id", "verification_tokens": "token", "chart_cache": "id"}
EXPIRES = {"sessions": "expires", "verification_tokens": "expires", "chart_cache": '"expiresAt"'}


@pytest.fixture
async def db():
    url = await create_database()
    try:
        await asyncio.to_thread(migrate.apply, url)
        conn = await asyncpg.connect(url)
        try:
            yield url, conn
        finally:
            await conn.close()
    finally:
        await drop_database(url)


async def seed(conn, table: str, rows: int, expired: str = "i % 2 = 0") -> set[str]:
    """The table's rows; returns the keys of the live ones (what a sweep must leave)."""
    await conn.execute(SEED[table].format(expiry=EXPIRY.format(now=NOW, expired=expired), rows=rows))
    await conn.execute(f"ANALYZE {table}")
    return {r[0] for r in await conn.fetch(f"SELECT {KEY[table]} FROM {table} WHERE {EXPIRES[table]} > {NOW}")}


async def left(conn, table: str) -> set[str]:
    return {r[0] for r in await conn.fetch(f"SELECT {KEY[table]} FROM {table}")}


@pytest.mark.parametrize("table", list(sweeps.SWEEPS))
async def test_the_block_window_statement_deletes_exactly_the_expired_rows_of_its_blocks(db, table):
    _, conn = db
    live = await seed(conn, table, 400)
    pages = await conn.fetchval(Q.sweep_start, table)
    assert pages >= 2, pages  # two windows: the first must leave the second's rows alone
    statement = sweeps.SWEEPS[table].in_blocks
    in_first = {r[0] for r in await conn.fetch(
        f"SELECT {KEY[table]} FROM {table} WHERE ctid < '(1,0)'::tid AND {EXPIRES[table]} <= {NOW}")}
    assert in_first
    before = await left(conn, table)
    assert await conn.fetchval(statement, 10_000, (0, 0), (1, 0)) == len(in_first)
    assert await left(conn, table) == before - in_first
    # a batch stops at its size; the window's next batch goes on where it stopped
    assert await conn.fetchval(statement, 7, (1, 0), (pages, 0)) == 7
    while await conn.fetchval(statement, 7, (1, 0), (pages, 0)) == 7:
        pass
    assert await left(conn, table) == live


@pytest.mark.parametrize("table", list(sweeps.SWEEPS))
async def test_oldest_first_goes_on_after_the_previous_batchs_last_expiry(db, table):
    _, conn = db
    live = await seed(conn, table, 300)
    from service.db import init_connection

    await init_connection(conn)  # the service's timestamp codec: `last` goes back as it came
    statement = sweeps.SWEEPS[table].oldest_first
    expiries = [r[0] for r in await conn.fetch(
        f"SELECT {EXPIRES[table]} FROM {table} WHERE {EXPIRES[table]} <= {NOW} ORDER BY 1")]
    count, last = await conn.fetchrow(statement, 40, None)
    assert (count, last) == (40, expiries[39])  # the oldest 40
    total, batches = count, 1
    while count == 40:
        count, last = await conn.fetchrow(statement, 40, last)
        total, batches = total + count, batches + 1
    assert total == len(expiries) and batches == len(expiries) // 40 + 1
    assert await left(conn, table) == live


async def test_a_backlog_bigger_than_the_table_in_pages_is_swept_in_physical_order(db, redis_url, aiohttp_client):
    url, conn = db
    live = await seed(conn, "sessions", 90_000)  # ~1,400 pages of 8 kB, 45,000 expired rows
    pages = await conn.fetchval(Q.sweep_start, "sessions")
    assert pages >= sweeps.PHYSICAL_ORDER_MIN_PAGES, pages
    client = await aiohttp_client(create_app(make_settings(url, redis_url, cache_enabled=False, sweep_pause_ms=0)))
    result = await sweeps.sweep_table(client.server.app[DEPS], "sessions", batch_size=1000)
    assert result.physicalOrder and result.count == 90_000 - len(live)
    assert await left(conn, "sessions") == live
    # windows of about one batch: ~45 of them (a few take a second batch), then one by expiry that
    # finds nothing left
    assert 40 <= result.batches <= 100, result.batches


async def test_a_few_expired_rows_go_oldest_first(db, redis_url, aiohttp_client):
    url, conn = db
    await seed(conn, "sessions", 90_000, expired="i % 900 = 0")
    client = await aiohttp_client(create_app(make_settings(url, redis_url, cache_enabled=False, sweep_pause_ms=0)))
    result = await sweeps.sweep_table(client.server.app[DEPS], "sessions", batch_size=1000)
    assert not result.physicalOrder and (result.count, result.batches) == (100, 1)
    assert await conn.fetchval(f"SELECT count(*) FROM sessions WHERE expires <= {NOW}") == 0


async def test_the_pause_between_batches_is_at_least_as_long_as_the_batch(monkeypatch):
    clock = SimpleNamespace(now=0.0)
    pauses = []

    async def sleep(seconds):
        pauses.append(round(seconds, 3))

    class Db:  # three batches: 300 ms and 10 ms with a full batch each, then the last, short one
        answers = [(0.3, (5, "2026-01-01T00:00:00.000Z")), (0.01, (5, "2026-01-02T00:00:00.000Z")),
                   (0.05, (2, "2026-01-03T00:00:00.000Z"))]
        seen = []

        async def fetchrow(self, sql, *args):
            took, answer = self.answers.pop(0)
            self.seen.append(args)
            clock.now += took
            return answer

    async def no_backlog(deps, table):
        return 0, 0, None

    monkeypatch.setattr(sweeps, "asyncio", SimpleNamespace(sleep=sleep))
    monkeypatch.setattr(sweeps, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    monkeypatch.setattr(sweeps, "_backlog", no_backlog)
    db = Db()
    deps = SimpleNamespace(db=db, settings=SimpleNamespace(sweep_pause_ms=20, sweep_batch_size=5))
    result = await sweeps.sweep_table(deps, "sessions")
    assert (result.count, result.batches, result.longestBatchMs) == (12, 3, 300.0)
    assert pauses == [0.3, 0.02]  # the batch's own time when longer than SWEEP_PAUSE_MS
    # each batch starts after the previous batch's last expiry
    assert [args[1] for args in db.seen] == [None, "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"]
