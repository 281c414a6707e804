"""`python -m service reencrypt`: rewrite every stored OAuth token under the newest key, in its newest
form (enc:v2, associated data bound to table, column and row), so old keys can be removed.

* In batches of --batch-size accounts (id order), each its own short statement: no long transaction,
  no lock held between batches, and the service keeps serving (it reads every form meanwhile).
* Safe against concurrent writes: a field is replaced only if it still holds the value read.
* Resumable: a value already current is skipped, so running it again continues where it stopped
  (`--after ID` skips straight past the accounts already done; each progress line names the last id).
* A value no configured key decrypts is counted and left alone (it is reported, never destroyed).
After a run that reports 0 undecryptable values, keys other than the first can be removed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from .crypto import (
    ACCOUNTS_TABLE,
    ENCRYPTED_ACCOUNT_FIELDS,
    FieldCipher,
    UndecryptableError,
)
from .migrate import MigrateError
from .queries import Q


@dataclass
class ReencryptResult:
    accounts: int = 0  # accounts read
    rewritten: int = 0  # fields rewritten
    undecryptable: int = 0  # fields left as they were: no configured key opens them
    last_id: str = ""


def _renewed(cipher: FieldCipher, row, result: ReencryptResult) -> list[str | None] | None:
    """[old, new] per field for one account, or None when every field is already current."""
    pairs: list[str | None] = []
    changed = False
    for field in ENCRYPTED_ACCOUNT_FIELDS:
        old = row[field]
        new = old
        if not cipher.is_current(old):
            try:
                new = cipher.encrypt(cipher.decrypt(old, ACCOUNTS_TABLE, field, row["id"]), ACCOUNTS_TABLE,
                                     field, row["id"])
                result.rewritten += 1
                changed = True
            except UndecryptableError:
                result.undecryptable += 1
        pairs += [old, new]
    return pairs if changed else None


async def reencrypt_accounts(conn: asyncpg.Connection, cipher: FieldCipher, batch_size: int = 500,
                             after: str = "", progress=print) -> ReencryptResult:
    if not cipher.enabled:
        raise MigrateError("FIELD_ENCRYPTION_KEY is not set: nothing to re-encrypt with")
    result = ReencryptResult(last_id=after)
    while True:
        rows = await conn.fetch(Q.account_tokens_after, result.last_id, batch_size)
        if not rows:
            break
        columns: list[list] = [[] for _ in range(7)]
        for row in rows:
            pairs = _renewed(cipher, row, result)
            if pairs is not None:
                for column, value in zip(columns, [row["id"], *pairs]):
                    column.append(value)
        if columns[0]:
            await conn.execute(Q.rewrite_account_tokens, *columns)
        result.accounts += len(rows)
        result.last_id = rows[-1]["id"]
        progress(f"accounts: {result.accounts} read, {result.rewritten} field(s) rewritten, "
                 f"{result.undecryptable} undecryptable; last id {result.last_id}")
    return result


def run(database_url: str, key_spec: str, batch_size: int, after: str) -> int:
    async def go():
        conn = await asyncpg.connect(database_url)
        try:
            return await reencrypt_accounts(conn, FieldCipher(key_spec), batch_size, after)
        finally:
            await conn.close()

    result = asyncio.run(go())
    print(f"done: {result.rewritten} field(s) now under key {FieldCipher(key_spec).current!r}"
          + (f"; {result.undecryptable} could not be decrypted with any configured key — keep the old keys"
             " until they are resolved" if result.undecryptable else "; keys other than the first can go"))
    return 1 if result.undecryptable else 0
