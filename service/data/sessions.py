"""Auth.js sessions: create, lookup with the user (cached, never past the session's expiry), update, delete."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import msgspec

from ..db import parse_timestamp
from ..deps import Deps
from ..ids import new_id
from ..problems import not_found, validation
from ..queries import Q
from ..schemas import SessionCreate
from . import keys
from .unknown_outcome import invalidating_if_unknown

encode = msgspec.json.Encoder().encode


async def create_session(deps: Deps, body: SessionCreate) -> dict:
    try:
        async with invalidating_if_unknown(deps, keys=(keys.session_lookup(body.sessionToken),)):
            row = await deps.db.fetchrow(Q.insert_session, new_id(), body.sessionToken, body.userId, body.expires)
    except asyncpg.ForeignKeyViolationError:
        raise validation("userId", "no user has this id") from None
    # A "not found" for this token may be cached.
    await deps.cache.invalidate(keys=(keys.session_lookup(body.sessionToken),))
    return dict(row)


def seconds_until(timestamp: str) -> float:
    expires = parse_timestamp(timestamp)
    return (expires - datetime.now(UTC)).total_seconds()


_CACHED_HEAD = b'{"session":{'


def _session_and_user(row) -> bytes:
    """The {session, user} JSON of a lookup_session row, without the session token."""
    session = {"id": row["id"], "userId": row["userId"], "expires": row["expires"]}
    user = {"id": row["u_id"], "email": row["u_email"], "emailVerified": row["u_email_verified"],
            "name": row["u_name"], "image": row["u_image"], "role": row["u_role"],
            "createdAt": row["u_created_at"], "updatedAt": row["u_updated_at"]}
    return encode({"session": session, "user": user})


async def lookup_session(deps: Deps, token: str) -> bytes | None:
    """{session, user} as JSON; cached at most until the session expires.

    The cached copy leaves the session token out (the key is its hash): a secret never sits in Redis
    in clear. The caller sent the token, so it is put back into the answer here."""

    async def load():
        row = await deps.fill_db.fetchrow(Q.lookup_session, token)
        if row is None:
            return None, None, ()
        return _session_and_user(row), seconds_until(row["expires"]), (keys.user_tag(row["userId"]),)

    if deps.cache.enabled:
        cached = await deps.cache.read_through(keys.session_lookup(token), deps.settings.cache_ttl_user, load)
    else:  # cache off: no key to hash, no time left to work out, no cache layers
        row = await deps.read_db.fetchrow(Q.lookup_session, token)
        cached = _session_and_user(row) if row is not None else None
    if cached is None:
        return None
    return b'{"session":{"sessionToken":' + encode(token) + b"," + cached[len(_CACHED_HEAD):]


async def update_session(deps: Deps, token: str, expires) -> dict:
    async with invalidating_if_unknown(deps, keys=(keys.session_lookup(token),)):
        row = await deps.db.fetchrow(Q.update_session, token, expires)
    if row is None:
        raise not_found("session")
    await deps.cache.invalidate(keys=(keys.session_lookup(token),))
    return dict(row)


async def delete_session(deps: Deps, token: str) -> dict:
    async with invalidating_if_unknown(deps, keys=(keys.session_lookup(token),)):
        row = await deps.db.fetchrow(Q.delete_session, token)
    if row is None:
        raise not_found("session")
    await deps.cache.invalidate(keys=(keys.session_lookup(token),))
    return dict(row)
