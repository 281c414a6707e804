"""Writes whose outcome is unknown still drop the cache entries they may have changed.

When the connection drops after PostgreSQL committed a write but before its reply arrived (a network
blip, a failover, a PgBouncer restart), the service answers 503 and cannot tell whether the write
happened. Skipping the invalidation then let the cache serve the old value until its TTL although the
database had the new one: a session signed out during a blip stayed valid. Dropping entries costs one
Redis call and is always safe, so it is done for every failure except the service's own refusals
(`Problem`: a 4xx decided before or instead of writing).

The server may commit a moment *after* the client saw the connection drop (it had the whole message and
runs it anyway), and a read in that moment could put the old value back into the cache: the entries are
dropped once more `LATE_COMMIT_SECONDS` later."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..deps import Deps
from ..problems import Problem

log = logging.getLogger("service.cache")

LATE_COMMIT_SECONDS = 2.0
_later: set[asyncio.Task] = set()  # strong references until each second invalidation has run


@asynccontextmanager
async def invalidating_if_unknown(deps: Deps, *, keys: tuple[str, ...] = (),
                                  tags: tuple[str, ...] = ()) -> AsyncIterator[None]:
    """Around a write: if it fails other than by a Problem, drop `keys` and `tags`, then re-raise.
    (On success the caller invalidates what the write's result names, as before.)"""
    try:
        yield
    except Problem:
        raise
    except BaseException:
        await invalidate_after_failed_write(deps, keys=keys, tags=tags)
        raise


async def invalidate_after_failed_write(deps: Deps, *, keys: tuple[str, ...] = (),
                                        tags: tuple[str, ...] = ()) -> None:
    """Drop `keys` and `tags` now and once more LATE_COMMIT_SECONDS later; never raises."""
    await _invalidate(deps, keys, tags)
    task = asyncio.get_running_loop().create_task(_invalidate_later(deps, keys, tags))
    _later.add(task)
    task.add_done_callback(_later.discard)


async def _invalidate(deps: Deps, keys: tuple[str, ...], tags: tuple[str, ...]) -> None:
    try:
        await deps.cache.invalidate(keys=keys, tags=tags)
    except Exception as exc:  # never hide the write's own failure
        log.warning("invalidation after a failed write did not complete: %s", type(exc).__name__)


async def _invalidate_later(deps: Deps, keys: tuple[str, ...], tags: tuple[str, ...]) -> None:
    await asyncio.sleep(LATE_COMMIT_SECONDS)
    await _invalidate(deps, keys, tags)
