"""WebAuthn authenticators (passkeys), Auth.js's Authenticator model: create, read, list, counter."""

from __future__ import annotations

import asyncpg

from ..deps import Deps
from ..problems import FieldError, Problem, not_found, validation
from ..queries import Q
from ..schemas import AuthenticatorCreate


async def create_authenticator(deps: Deps, body: AuthenticatorCreate) -> dict:
    try:
        row = await deps.db.fetchrow(
            Q.insert_authenticator, body.credentialID, body.userId, body.providerAccountId,
            body.credentialPublicKey, body.counter, body.credentialDeviceType, body.credentialBackedUp,
            body.transports,
        )
    except asyncpg.ForeignKeyViolationError:
        raise validation("userId", "no user has this id") from None
    except asyncpg.UniqueViolationError:
        # The primary key (userId, credentialID) or the credentialID alone: either way the id is taken.
        raise Problem(409, "credentialID already taken",
                      [FieldError("credentialID", "already taken")]) from None
    return dict(row)


async def get_authenticator(deps: Deps, credential_id: str) -> dict:
    row = await deps.db.fetchrow(Q.get_authenticator, credential_id)
    if row is None:
        raise not_found("authenticator")
    return dict(row)


async def update_counter(deps: Deps, credential_id: str, counter: int) -> dict:
    row = await deps.db.fetchrow(Q.update_authenticator_counter, credential_id, counter)
    if row is None:
        raise not_found("authenticator")
    return dict(row)
