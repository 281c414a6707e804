"""Users: create (with nested subscription and natal data), read (cached), update, delete, passwords."""

from __future__ import annotations

import msgspec

from .. import passwords
from ..db import affected_rows
from ..deps import Deps
from ..ids import new_id
from ..problems import not_found
from ..queries import Q
from ..schemas import UserBatch, UserCreate, to_dict
from . import keys
from .natal_data import insert_natal_data
from .per_user import cached_row_of_user
from .subscriptions import insert_subscription
from .unknown_outcome import invalidating_if_unknown

encode = msgspec.json.Encoder().encode
decode = msgspec.json.Decoder().decode

USER_FIELDS = ("id", "email", "emailVerified", "name", "image", "role", "createdAt", "updatedAt")
INCLUDABLE = ("subscription", "natalData", "accounts")


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create_user(deps: Deps, body: UserCreate) -> dict:
    email = normalize_email(body.email)
    # Hash before taking a connection: a connection is never held while bcrypt works.
    hashed = await deps.passwords.hash(body.password) if body.password is not None else None
    async with invalidating_if_unknown(deps, keys=(keys.user_by_email(email),)), \
            deps.db.transaction() as conn:
        row = await conn.fetchrow(Q.insert_user, new_id(), email, body.name, body.image, hashed,
                                  body.emailVerified, body.role.value)
        user = dict(row)
        if body.subscription is not None:
            user["subscription"] = await insert_subscription(conn, user["id"], body.subscription)
        if body.natalData is not None:
            user["natalData"] = await insert_natal_data(conn, user["id"], body.natalData)
    # A "not found" for this e-mail may be cached.
    await deps.cache.invalidate(keys=(keys.user_by_email(email),))
    return user


async def create_users_batch(deps: Deps, body: UserBatch) -> int:
    hashes = await deps.passwords.hash_many([
        (item.password, f"users[{i}].password") for i, item in enumerate(body.users) if item.password is not None
    ])
    hashes_left = iter(hashes)
    columns: list[list] = [[], [], [], [], [], [], []]
    for item in body.users:
        hashed = next(hashes_left) if item.password is not None else None
        for column, value in zip(columns, (new_id(), normalize_email(item.email), item.name, item.image,
                                           hashed, item.emailVerified, item.role.value)):
            column.append(value)
    sql = Q.insert_users_batch_skip_duplicates if body.skipDuplicates else Q.insert_users_batch
    async with invalidating_if_unknown(deps, keys=tuple(keys.user_by_email(e) for e in columns[1])):
        status = await deps.db.execute(sql, *columns)
    await deps.cache.invalidate(keys=tuple(keys.user_by_email(e) for e in columns[1]))
    return affected_rows(status)


async def get_user(deps: Deps, user_id: str) -> bytes | None:
    """The user's JSON, cached under user:id:<id>."""
    return await cached_row_of_user(deps, keys.user_by_id(user_id), deps.settings.cache_ttl_user,
                                    Q.get_user_by_id, user_id)


async def get_user_by_email(deps: Deps, email: str) -> bytes | None:
    email = normalize_email(email)

    async def load():
        row = await deps.fill_db.fetchrow(Q.get_user_by_email, email)
        if row is None:
            return None, None, ()
        return encode(dict(row)), None, (keys.user_tag(row["id"]),)

    return await deps.cache.read_through(keys.user_by_email(email), deps.settings.cache_ttl_user, load)


async def get_user_by_account(deps: Deps, provider: str, provider_account_id: str) -> dict | None:
    row = await deps.read_db.fetchrow(Q.get_user_by_account, provider, provider_account_id)
    return dict(row) if row else None


async def get_user_with_relations(deps: Deps, user_id: str, include: set[str]) -> dict | None:
    row = await deps.read_db.fetchrow(
        Q.get_user_with_relations, user_id,
        "subscription" in include, "natalData" in include, "accounts" in include,
    )
    if row is None:
        return None
    user = {name: row[name] for name in USER_FIELDS}
    for name in ("subscription", "natalData"):
        if name in include:
            user[name] = dict(row[name]) if row[name] is not None else None
    if "accounts" in include:
        user["accounts"] = [deps.cipher.decrypt_account(a) for a in row["accounts"]]
    return user


async def update_user(deps: Deps, user_id: str, patch) -> dict:
    changes = to_dict(patch)
    if "email" in changes:
        changes["email"] = normalize_email(changes["email"])
    if "role" in changes:
        changes["role"] = changes["role"].value
    args = [user_id]
    for field in ("email", "name", "image", "emailVerified", "role"):
        args += [field in changes, changes.get(field)]
    # The old e-mail is known only from inside the write; the user's tag covers the by-id entry, and a
    # new e-mail's "not found" is dropped by name.
    unknown = (keys.user_by_email(changes["email"]),) if "email" in changes else ()
    async with invalidating_if_unknown(deps, keys=unknown, tags=(keys.user_tag(user_id),)), \
            deps.db.transaction() as conn:
        old_email = await conn.fetchval(Q.get_user_email_for_update, user_id)
        if old_email is None:
            raise not_found("user")
        row = await conn.fetchrow(Q.update_user, *args)
    await deps.cache.invalidate(
        keys=(keys.user_by_email(old_email), keys.user_by_email(row["email"])),
        tags=(keys.user_tag(user_id),),
    )
    return dict(row)


async def set_password(deps: Deps, user_id: str, password: str, keep_sessions: bool = False,
                       current_session: str | None = None) -> None:
    """A new password ends the user's other sessions (someone who knew the old one may hold one),
    unless `keep_sessions`; `current_session` (the session making the change) is kept."""
    hashed = await deps.passwords.hash(password)
    async with invalidating_if_unknown(deps, tags=(keys.user_tag(user_id),)), deps.db.transaction() as conn:
        status = await conn.execute(Q.set_password, user_id, hashed)
        if affected_rows(status) == 0:
            raise not_found("user")
        ended = [] if keep_sessions else await conn.fetch(Q.delete_sessions_but, user_id, current_session)
    if ended:
        await deps.cache.invalidate(keys=tuple(keys.session_lookup(r["sessionToken"]) for r in ended),
                                    tags=(keys.user_tag(user_id),))


async def verify_password(deps: Deps, user_id: str, password: str) -> bool:
    passwords.password_bytes(password)  # a 422 for a bad password before any lookup
    row = await deps.db.fetchrow(Q.get_password_hash, user_id)
    if row is None:
        raise not_found("user")
    return await deps.passwords.check(password, row["password"])


async def delete_user(deps: Deps, user_id: str) -> None:
    """Accounts, sessions, subscription and natal data go with it (ON DELETE CASCADE), charts in the
    same statement (sql/users.sql)."""
    async with invalidating_if_unknown(deps, keys=(keys.user_by_id(user_id),),
                                       tags=(keys.user_tag(user_id), keys.chart_tag(user_id))):
        email = await deps.db.fetchval(Q.delete_user, user_id)
    if email is None:
        raise not_found("user")
    await deps.cache.invalidate(keys=(keys.user_by_email(email), keys.user_by_id(user_id)),
                                tags=(keys.user_tag(user_id), keys.chart_tag(user_id)))


async def delete_user_sessions(deps: Deps, user_id: str) -> int:
    async with invalidating_if_unknown(deps, tags=(keys.user_tag(user_id),)), deps.db.transaction() as conn:
        if not await conn.fetchval(Q.user_exists, user_id):
            raise not_found("user")
        tokens = await conn.fetch(Q.delete_user_sessions, user_id)
    await deps.cache.invalidate(keys=tuple(keys.session_lookup(r["sessionToken"]) for r in tokens),
                                tags=(keys.user_tag(user_id),))
    return len(tokens)


def select_fields(user_json: bytes, select: tuple[str, ...]) -> dict:
    user = decode(user_json)
    return {name: user[name] for name in select}
