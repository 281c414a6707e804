"""Subscriptions: read (cached) and upsert; the Stripe webhook writes through `upsert_from_stripe`."""

from __future__ import annotations

import msgspec

from ..deps import Deps
from ..ids import new_id
from ..problems import not_found
from ..queries import Q
from ..schemas import SubscriptionIn
from . import keys

encode = msgspec.json.Encoder().encode


def _args(body: SubscriptionIn) -> tuple:
    return (body.stripeCustomerId, body.stripeSubscriptionId, body.stripePriceId, body.status.value,
            body.currentPeriodEnd, body.cancelAtPeriodEnd)


async def insert_subscription(conn, user_id: str, body: SubscriptionIn) -> dict:
    return dict(await conn.fetchrow(Q.insert_subscription, new_id(), user_id, *_args(body)))


async def get_subscription(deps: Deps, user_id: str) -> bytes | None:
    async def load():
        row = await deps.read_db.fetchrow(Q.get_subscription_by_user, user_id)
        return (encode(dict(row)) if row else None), None, (keys.user_tag(user_id),)

    return await deps.cache.read_through(keys.subscription_of(user_id), deps.settings.cache_ttl_subscription, load)


async def put_subscription(deps: Deps, user_id: str, body: SubscriptionIn) -> tuple[dict, bool]:
    """Upsert; returns (subscription, created)."""
    async with deps.db.transaction() as conn:
        if not await conn.fetchval(Q.user_exists, user_id):
            raise not_found("user")
        row = dict(await conn.fetchrow(Q.upsert_subscription, new_id(), user_id, *_args(body)))
    await invalidate_subscription(deps, user_id)
    created = row.pop("inserted")
    return row, created


async def invalidate_subscription(deps: Deps, user_id: str) -> None:
    await deps.cache.invalidate(keys=(keys.subscription_of(user_id),))
