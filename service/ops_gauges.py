"""Gauges that need a query (Stripe backlog, replica lag, migrations), read in the background.

A scrape cannot wait for the database (prometheus_client collects synchronously), and a query per
scrape per instance would put ops' load on the database; so each instance refreshes them every
`metrics_refresh_seconds` (migrations, which need yoyo's own connection, every tenth time) and
/metrics shows the last values, with ops_gauges_last_refresh_timestamp_seconds saying how old they are.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from .background import every
from .deps import DEPS, Deps
from .metrics import (
    GAUGES_REFRESHED,
    MIGRATIONS_DRIFTED,
    MIGRATIONS_PENDING,
    REPLICA_LAG,
    STRIPE_BACKLOG,
    STRIPE_BACKLOG_AGE,
)
from .queries import Q

MIGRATIONS_EVERY = 10  # refreshes


async def refresh(deps: Deps, with_migrations: bool) -> None:
    row = await deps.db.fetchrow(Q.ops_stripe_backlog)
    STRIPE_BACKLOG.labels("pending").set(row["pending"])
    STRIPE_BACKLOG.labels("conflict").set(row["conflict"])
    STRIPE_BACKLOG_AGE.set(row["oldest_seconds"])
    if with_migrations:
        from .doctor import migration_state
        from .embedded import resolve_database_url

        _, pending, drifted = await asyncio.to_thread(migration_state, resolve_database_url(deps.settings))
        MIGRATIONS_PENDING.set(len(pending))
        MIGRATIONS_DRIFTED.set(len(drifted))
    GAUGES_REFRESHED.set(time.time())
    if deps.read_db is not deps.db:  # last: a replica that is down must not stop the others
        REPLICA_LAG.set(await deps.read_db.replica.fetchval(Q.ops_replica_lag))


async def _refresh(app: web.Application, round_number: int) -> None:
    await refresh(app[DEPS], round_number % MIGRATIONS_EVERY == 0)


# cleanup_ctx: refresh at start and then every metrics_refresh_seconds (0 turns it off).
gauges_in_background = every("metrics_refresh_seconds", _refresh, "background gauges", at_start=True)
