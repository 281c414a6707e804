"""OAuth accounts: link, read, unlink. Tokens are encrypted at rest when FIELD_ENCRYPTION_KEY is set."""

from __future__ import annotations

import asyncpg

from ..crypto import ENCRYPTED_ACCOUNT_FIELDS, looks_encrypted
from ..deps import Deps
from ..ids import new_id
from ..problems import not_found, validation
from ..queries import Q
from ..schemas import AccountCreate


async def link_account(deps: Deps, body: AccountCreate) -> dict:
    tokens = {"access_token": body.access_token, "refresh_token": body.refresh_token, "id_token": body.id_token}
    if not deps.cipher.enabled:
        for name in ENCRYPTED_ACCOUNT_FIELDS:
            # Stored as given, it would later be read as ciphertext whose key is missing.
            if looks_encrypted(tokens[name]):
                raise validation(name, "looks like an encrypted value (enc:v1:/enc:v2:) and no "
                                       "FIELD_ENCRYPTION_KEY is configured to tell it apart")
    account_id = new_id()
    fields = deps.cipher.encrypt_account(tokens, account_id)
    try:
        row = await deps.db.fetchrow(
            Q.insert_account, account_id, body.userId, body.type, body.provider, body.providerAccountId,
            fields["refresh_token"], fields["access_token"], body.expires_at, body.token_type, body.scope,
            fields["id_token"], body.session_state,
        )
    except asyncpg.ForeignKeyViolationError:
        raise validation("userId", "no user has this id") from None
    return deps.cipher.decrypt_account(row)


async def get_account(deps: Deps, provider: str, provider_account_id: str) -> dict:
    row = await deps.db.fetchrow(Q.get_account, provider, provider_account_id)
    if row is None:
        raise not_found("account")
    return deps.cipher.decrypt_account(row)


async def unlink_account(deps: Deps, provider: str, provider_account_id: str) -> None:
    if await deps.db.fetchval(Q.delete_account, provider, provider_account_id) is None:
        raise not_found("account")
