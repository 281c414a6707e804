"""Auth.js verification tokens: create, and use once (DELETE ... RETURNING)."""

from __future__ import annotations

from ..deps import Deps
from ..problems import not_found
from ..queries import Q
from ..schemas import VerificationTokenCreate


async def create_verification_token(deps: Deps, body: VerificationTokenCreate) -> dict:
    return dict(await deps.db.fetchrow(Q.insert_verification_token, body.identifier, body.token, body.expires))


async def use_verification_token(deps: Deps, identifier: str | None, token: str) -> dict:
    row = await deps.db.fetchrow(Q.use_verification_token, identifier, token)
    if row is None:
        raise not_found("verification token")
    return dict(row)
