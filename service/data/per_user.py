"""What the one-per-user resources (the user row, subscription, natal data) share: a cached read tagged
with the user, and an upsert that first checks the user exists."""

from __future__ import annotations

import msgspec

from ..deps import Deps
from ..ids import new_id
from ..problems import not_found
from ..queries import Q
from . import keys
from .unknown_outcome import invalidating_if_unknown

encode = msgspec.json.Encoder().encode


async def cached_row_of_user(deps: Deps, cache_key: str, ttl: float, sql: str, user_id: str) -> bytes | None:
    """The row `sql` finds for `user_id`, as JSON, cached under `cache_key` and tagged `user:<id>`."""
    if not deps.cache.enabled:  # cache off: straight to the database, without the cache's layers
        row = await deps.read_db.fetchrow(sql, user_id)
        return encode(dict(row)) if row else None

    async def load():
        row = await deps.fill_db.fetchrow(sql, user_id)
        return (encode(dict(row)) if row else None), None, (keys.user_tag(user_id),)

    return await deps.cache.read_through(cache_key, ttl, load)


async def upsert_for_user(deps: Deps, cache_key: str, sql: str, user_id: str, args: tuple) -> tuple[dict, bool]:
    """Run an upsert whose RETURNING ends in `(xmax = 0) AS inserted`; 404 when the user does not
    exist. Returns (row, created) and drops the cached copy after the commit."""
    async with invalidating_if_unknown(deps, keys=(cache_key,)), deps.db.transaction() as conn:
        if not await conn.fetchval(Q.user_exists, user_id):
            raise not_found("user")
        row = dict(await conn.fetchrow(sql, new_id(), user_id, *args))
    await deps.cache.invalidate(keys=(cache_key,))
    created = row.pop("inserted")
    return row, created
