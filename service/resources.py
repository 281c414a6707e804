"""Open and close what a running service needs (pools, cache, cipher), for the app and the commands."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, suppress

from .cache import create_cache
from .crypto import FieldCipher
from .db import Database, DatabaseUnavailable, ReplicaDatabase
from .deps import Deps
from .embedded import resolve_database_url
from .passwords import PasswordPool
from .settings import Settings

log = logging.getLogger("service.startup")
RETRY_DELAYS = (1, 2, 4, 8, 15, 30)  # seconds between attempts to reach the database at start; then 30


async def _wait_until_reachable(db: Database, first_error: str) -> None:
    """One log line per attempt until the database answers; meanwhile /readyz says 503."""
    attempt, error = 1, first_error
    while True:
        delay = RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)]
        log.warning("database unreachable (attempt %d): %s; next attempt in %d s", attempt, error, delay)
        await asyncio.sleep(delay)
        attempt += 1
        try:
            await db.ping()
        except Exception as exc:  # unreachable, or reachable but refusing us (password, database name)
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        log.warning("database reachable (attempt %d)", attempt)
        return


async def _connect_primary(settings: Settings, wait_for_database: bool):
    """The primary's pool; when it cannot be reached and the caller is the service, an empty pool
    (connections are opened on demand) and a task that retries and reports until it answers."""
    url = resolve_database_url(settings)
    try:
        return await Database.connect(url, settings), None
    except DatabaseUnavailable as exc:
        if not wait_for_database:
            raise
        db = await Database.connect(url, settings, min_size=0)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return db, asyncio.create_task(_wait_until_reachable(db, first))


@asynccontextmanager
async def open_deps(settings: Settings, wait_for_database: bool = False):
    db, waiting = await _connect_primary(settings, wait_for_database)
    read_db = db
    cache = None
    passwords = PasswordPool.from_settings(settings)
    try:
        if settings.database_read_url:
            # min_size=0: the service starts (and reads from the primary) even when the replica is down.
            replica = await Database.connect(settings.database_read_url, settings, min_size=0, name="replica")
            read_db = ReplicaDatabase(replica, db)
        cache = create_cache(settings, settings.cache_prefix)
        cache.enabled = settings.cache_enabled
        cache.start()
        yield Deps(settings=settings, db=db, read_db=read_db, cache=cache,
                   cipher=FieldCipher(settings.field_encryption_key),
                   passwords=passwords)
    finally:
        if waiting is not None:
            waiting.cancel()
            # It may have died on its own (a wrong password once the server answered): the rest of the
            # cleanup must still run.
            with suppress(asyncio.CancelledError, Exception):
                await waiting
        passwords.close()
        if cache is not None:
            await cache.close()
        if read_db is not db:
            await read_db.close()
        await db.close()
