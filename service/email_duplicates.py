"""`python -m service find-email-duplicates`: users whose e-mails differ only in case.

Migration 0020 makes e-mail uniqueness case-insensitive and refuses to run while such rows exist (an
adopted database from the old platform may have them). This lists every group, oldest account first,
with what an operator needs to merge them: ids, the e-mails as stored, sign-in methods and sessions.
Exit status 0 when there are none, 1 when there are (so a deploy script can stop before migrating).
"""

from __future__ import annotations

import asyncio

import asyncpg

FIND = """
SELECT lower(u.email) AS address, u.id, u.email, u."createdAt",
       u.password IS NOT NULL AS "hasPassword",
       (SELECT count(*) FROM accounts a WHERE a."userId" = u.id) AS accounts,
       (SELECT count(*) FROM sessions s WHERE s."userId" = u.id) AS sessions
FROM users u
WHERE lower(u.email) IN (SELECT lower(email) FROM users GROUP BY lower(email) HAVING count(*) > 1)
ORDER BY lower(u.email), u."createdAt", u.id
"""


async def find_email_duplicates(conn: asyncpg.Connection) -> dict[str, list[dict]]:
    """lower(email) -> its users, oldest first."""
    groups: dict[str, list[dict]] = {}
    for row in await conn.fetch(FIND):
        user = dict(row)
        groups.setdefault(user.pop("address"), []).append(user)
    return groups


def run(database_url: str) -> int:
    async def find():
        conn = await asyncpg.connect(database_url)
        try:
            return await find_email_duplicates(conn)
        finally:
            await conn.close()

    groups = asyncio.run(find())
    if not groups:
        print("no e-mail addresses differ only in case")
        return 0
    print(f"{len(groups)} e-mail address(es) are used by more than one user (differing only in case); "
          "merge each group into one user, then run `migrate` again:")
    for address, users in groups.items():
        print(address)
        for u in users:
            print(f"  {u['id']}  {u['email']}  created {u['createdAt']}  password={'yes' if u['hasPassword'] else 'no'}"
                  f"  accounts={u['accounts']}  sessions={u['sessions']}")
    return 1


REFUSAL = "users has e-mail addresses that differ only in case"


def refusal_report(exc: BaseException) -> str | None:
    """The text of migration 0020's refusal (its message and the duplicates), without the traceback;
    None for any other error."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) or ""
    if not primary.startswith(REFUSAL):
        return None
    return f"error: migration 0020 refused: {primary}\n{getattr(diag, 'message_detail', '') or ''}".rstrip()
