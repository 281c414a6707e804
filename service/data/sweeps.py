"""Expired rows go away: chart cache entries, Auth.js sessions and e-mail sign-in tokens are deleted in
bounded batches, one short transaction each (SKIP LOCKED: several instances sweep at once without waiting).

Two orders:
- Oldest first through the index on the expiry column (chart_cache_expiresAt_idx, sessions_expires_idx,
  verification_tokens_expires_idx), each batch starting where the previous one ended: the usual case, a
  few minutes' worth of expired rows.
- Physical order, when the planner expects more expired rows than the table has pages (a backlog: the
  first sweep of an old table, a long outage): windows of heap blocks, each batch deleting the expired
  rows of one window (a TID range scan), then the index order for whatever is left. Deleting a big
  backlog oldest first dirties a page once per batch that has a row on it, and every page again after
  each checkpoint (a full-page image in the WAL each time): bench/RESULTS.md measured 2.6-3.8 GB of WAL
  for 1M sessions or 1.2M charts whose expiries were spread over the table. In physical order each page
  is dirtied once, in one batch, and read sequentially.

Between two batches the sweep pauses SWEEP_PAUSE_MS, and at least as long as the batch took: the sweep
never has its connection busy more than half of the time, so on a loaded machine it slows down instead of
taking the CPU and disk that requests need.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import msgspec

from ..db import planned_rows
from ..deps import Deps
from ..metrics import SWEEP_BATCHES, SWEEP_DELETED, SWEEP_LAST_SUCCESS, SWEEP_RUNS
from ..queries import Q

log = logging.getLogger("service.sweeps")

# A backlog is swept in physical order only when it is this many batches or more, in a table of this many
# pages or more (8 MB): below that the order hardly matters (a small table's pages stay in shared buffers).
PHYSICAL_ORDER_MIN_BATCHES = 10
PHYSICAL_ORDER_MIN_PAGES = 1000
MAX_WINDOW_PAGES = 4096  # 32 MB read per batch at most, however sparse the expired rows are


class SweepResult(msgspec.Struct):
    count: int
    batches: int
    longestBatchMs: float
    physicalOrder: bool = False  # a backlog: swept in windows of heap blocks first


@dataclass(frozen=True)
class Sweep:
    """The statements of one table's sweep (sql/): by expiry, by block window, and the rows to delete."""

    oldest_first: str  # ($1 batch size, $2 last expiry of the previous batch) -> count, last
    in_blocks: str  # ($1 batch size, $2 first block, $3 end block) -> count
    expired: str  # planned only: its estimated rows are the backlog


SWEEPS = {
    "chart_cache": Sweep(Q.sweep_expired_charts, Q.sweep_expired_charts_in_blocks, Q.expired_charts),
    "sessions": Sweep(Q.sweep_expired_sessions, Q.sweep_expired_sessions_in_blocks, Q.expired_sessions),
    "verification_tokens": Sweep(Q.sweep_expired_verification_tokens, Q.sweep_expired_verification_tokens_in_blocks,
                                 Q.expired_verification_tokens),
}


class _Batches:
    """Runs one table's batches: counts, metrics, and the pause after each."""

    def __init__(self, deps: Deps, table: str, batch_size: int, metrics):
        self.deps, self.table, self.batch_size, self.metrics = deps, table, batch_size, metrics
        self.pause = deps.settings.sweep_pause_ms / 1000
        self.total = self.count = 0
        self.longest = self.last = 0.0
        self.charts = table == "chart_cache"  # the chart sweep's process-wide series (metrics.py) predate the others

    async def run(self, sql: str, *args):
        if self.count:
            # At least as long as the previous batch took: the sweep's share of its connection stays <= 1/2.
            await asyncio.sleep(max(self.pause, self.last))
        started = time.perf_counter()
        row = await self.deps.db.fetchrow(sql, self.batch_size, *args)
        self.last = elapsed = time.perf_counter() - started
        deleted = row[0]
        self.longest = max(self.longest, elapsed)
        self.total += deleted
        self.count += 1
        if self.metrics is not None:
            self.metrics.observe_sweep_batch(self.table, deleted, elapsed)
        if self.charts:  # per batch: a long sweep shows its progress as it goes
            SWEEP_DELETED.inc(deleted)
            SWEEP_BATCHES.inc()
        return row


async def _backlog(deps: Deps, table: str) -> tuple[int, int, str]:
    """(expired rows the planner expects, the table's pages, the database's time now)."""
    async with deps.db.connection() as conn:
        expected = await planned_rows(conn, SWEEPS[table].expired, [])
        pages, started = await conn.fetchrow(Q.sweep_start, table)
    return expected, pages, started


async def _in_physical_order(batches: _Batches, sweep: Sweep, expected: int, pages: int) -> None:
    """Every window of blocks once, each until its expired rows are gone. A window holds about three
    quarters of a batch of expired rows, so that few windows need a second batch (a window denser than
    the average, or an estimate on the low side)."""
    window = max(1, min(MAX_WINDOW_PAGES, batches.batch_size * 3 * pages // (4 * max(expected, 1))))
    for first in range(0, pages, window):
        while True:
            (deleted,) = await batches.run(sweep.in_blocks, (first, 0), (first + window, 0))
            if deleted < batches.batch_size:
                break


async def _oldest_first(batches: _Batches, sweep: Sweep, last: str | None = None) -> None:
    while True:
        deleted, newest = await batches.run(sweep.oldest_first, last)
        if deleted < batches.batch_size:
            return
        last = newest


async def sweep_table(deps: Deps, table: str, batch_size: int | None = None, metrics=None) -> SweepResult:
    """Delete `table`'s expired rows, one batch per transaction, until none is left."""
    batches = _Batches(deps, table, batch_size or deps.settings.sweep_batch_size, metrics)
    sweep = SWEEPS[table]
    physical = False
    try:
        expected, pages, started = await _backlog(deps, table)
        physical = (pages >= PHYSICAL_ORDER_MIN_PAGES and expected > pages
                    and expected >= PHYSICAL_ORDER_MIN_BATCHES * batches.batch_size)
        if physical:
            await _in_physical_order(batches, sweep, expected, pages)
            # Then by expiry, from the time the pass started: the rows that expired meanwhile (an earlier
            # start would first walk the index entries of every row the pass deleted, which stay until
            # vacuum: 0.6 s for 1M sessions). What the pass left for another reason (locked by another
            # instance, written beyond the pages counted) goes in the next sweep.
            await _oldest_first(batches, sweep, started)
        else:
            await _oldest_first(batches, sweep)
    except BaseException:
        if batches.charts:
            SWEEP_RUNS.labels("failed").inc()
        raise
    if batches.charts:
        SWEEP_RUNS.labels("ok").inc()
        SWEEP_LAST_SUCCESS.set_to_current_time()
    if batches.total:
        log.info("swept expired rows", extra={"table": table, "count": batches.total, "batches": batches.count,
                                              "physical_order": physical})
    return SweepResult(batches.total, batches.count, round(batches.longest * 1000, 2), physical)


async def sweep_all(deps: Deps, metrics=None) -> dict[str, SweepResult]:
    """Every table with expiring rows, one after the other (the background timer and `service sweep`)."""
    results = {table: await sweep_table(deps, table, metrics=metrics) for table in SWEEPS}
    from .stripe_events import prune_events  # Stripe event retention (issue 12)

    results["stripe_events"] = await prune_events(deps)
    return results
