"""OAuth accounts: link, read, unlink. Tokens are encrypted at rest when FIELD_ENCRYPTION_KEY is set."""

from __future__ import annotations

import asyncpg

from ..crypto import ENCRYPTED_ACCOUNT_FIELDS, looks_encrypted
from ..deps import Deps
from ..ids import new_id
from ..problems import not_found, validation
from ..queries import Q
from ..schemas import AccountCreate, to_dict

# In the order of sql/accounts.sql's update_account_tokens parameters.
ACCOUNT_TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at", "token_type", "scope", "id_token",
                        "session_state")


def refuse_ciphertext_without_key(deps: Deps, tokens: dict) -> None:
    """With no FIELD_ENCRYPTION_KEY, a value shaped like our ciphertext would later be read as ciphertext
    whose key is missing: refused (422) instead of stored."""
    if deps.cipher.enabled:
        return
    for name in ENCRYPTED_ACCOUNT_FIELDS:
        if looks_encrypted(tokens.get(name)):
            raise validation(name, "looks like an encrypted value (enc:v1:/enc:v2:) and no "
                                   "FIELD_ENCRYPTION_KEY is configured to tell it apart")


async def link_account(deps: Deps, body: AccountCreate) -> dict:
    tokens = {"access_token": body.access_token, "refresh_token": body.refresh_token, "id_token": body.id_token}
    refuse_ciphertext_without_key(deps, tokens)
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


async def update_account_tokens(deps: Deps, provider: str, provider_account_id: str, patch) -> dict:
    """Replace the tokens sent (refresh-token rotation); the ones left out are kept."""
    changes = to_dict(patch)
    refuse_ciphertext_without_key(deps, changes)
    sent = [name for name in ENCRYPTED_ACCOUNT_FIELDS if name in changes]
    encrypted = {}
    if sent:
        # The ciphertext is bound to the row's id (crypto.py), so the id comes first; it never changes.
        current = await deps.db.fetchrow(Q.get_account, provider, provider_account_id)
        if current is None:
            raise not_found("account")
        # encrypt_account fills in every token field; only the ones sent may change.
        encrypted = deps.cipher.encrypt_account({name: changes[name] for name in sent}, current["id"])
    changes.update({name: encrypted[name] for name in sent})
    args = [provider, provider_account_id]
    for name in ACCOUNT_TOKEN_FIELDS:
        args += [name in changes, changes.get(name)]
    row = await deps.db.fetchrow(Q.update_account_tokens, *args)
    if row is None:
        raise not_found("account")
    return deps.cipher.decrypt_account(row)
