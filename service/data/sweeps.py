"""Expired rows go away: chart cache entries, Auth.js sessions and e-mail sign-in tokens are deleted in
bounded batches, one short transaction each, oldest first through an index on the expiry column
(chart_cache_expiresAt_idx, sessions_expires_idx, verification_tokens_expires_idx).

Why batches with a pause between them: one DELETE of a million rows holds its locks and snapshot for
seconds, writes its WAL in one burst and leaves a million dead rows at once; small batches keep every
statement short (requests never queue behind the sweep), and the pause lets autovacuum (tuned per table in
migration 0034) and replication keep up.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from ..db import affected_rows
from ..deps import Deps
from ..metrics import SWEEP_BATCHES, SWEEP_DELETED, SWEEP_LAST_SUCCESS, SWEEP_RUNS
from ..queries import Q

log = logging.getLogger("service.sweeps")


class SweepResult(msgspec.Struct):
    count: int
    batches: int
    longestBatchMs: float


# what -> the named statement deleting one batch of its expired rows ($1 = batch size)
SWEEPS = {
    "chart_cache": Q.sweep_expired_charts,
    "sessions": Q.sweep_expired_sessions,
    "verification_tokens": Q.sweep_expired_verification_tokens,
}


async def sweep_table(deps: Deps, table: str, batch_size: int | None = None, metrics=None) -> SweepResult:
    """Delete `table`'s expired rows, one batch per transaction, until a batch comes back short."""
    batch_size = batch_size or deps.settings.sweep_batch_size
    pause = deps.settings.sweep_pause_ms / 1000
    total = batches = 0
    longest = 0.0
    charts = table == "chart_cache"  # the chart sweep's process-wide series (metrics.py) predate the others
    try:
        while True:
            started = time.perf_counter()
            deleted = affected_rows(await deps.db.execute(SWEEPS[table], batch_size))
            elapsed = time.perf_counter() - started
            longest = max(longest, elapsed)
            total += deleted
            batches += 1
            if metrics is not None:
                metrics.observe_sweep_batch(table, deleted, elapsed)
            if charts:  # per batch: a long sweep shows its progress as it goes
                SWEEP_DELETED.inc(deleted)
                SWEEP_BATCHES.inc()
            if deleted < batch_size:
                break
            if pause:
                await asyncio.sleep(pause)
    except BaseException:
        if charts:
            SWEEP_RUNS.labels("failed").inc()
        raise
    if charts:
        SWEEP_RUNS.labels("ok").inc()
        SWEEP_LAST_SUCCESS.set_to_current_time()
    if total:
        log.info("swept expired rows", extra={"table": table, "count": total, "batches": batches})
    return SweepResult(total, batches, round(longest * 1000, 2))


async def sweep_all(deps: Deps, metrics=None) -> dict[str, SweepResult]:
    """Every table with expiring rows, one after the other (the background timer and `service sweep`)."""
    results = {table: await sweep_table(deps, table, metrics=metrics) for table in SWEEPS}
    from .stripe_events import prune_events  # Stripe event retention (issue 12)

    results["stripe_events"] = await prune_events(deps)
    return results
