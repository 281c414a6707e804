"""Subscriptions: read (cached) and upsert. The Stripe webhook writes them in stripe_events.py."""

from __future__ import annotations

from ..deps import Deps
from ..ids import new_id
from ..queries import Q
from ..schemas import SubscriptionIn
from . import keys
from .per_user import cached_row_of_user, upsert_for_user


def _args(body: SubscriptionIn) -> tuple:
    return (body.stripeCustomerId, body.stripeSubscriptionId, body.stripePriceId, body.status.value,
            body.currentPeriodEnd, body.cancelAtPeriodEnd)


async def insert_subscription(conn, user_id: str, body: SubscriptionIn) -> dict:
    return dict(await conn.fetchrow(Q.insert_subscription, new_id(), user_id, *_args(body)))


async def get_subscription(deps: Deps, user_id: str) -> bytes | None:
    return await cached_row_of_user(deps, keys.subscription_of(user_id), deps.settings.cache_ttl_subscription,
                                    Q.get_subscription_by_user, user_id)


async def put_subscription(deps: Deps, user_id: str, body: SubscriptionIn) -> tuple[dict, bool]:
    """Upsert; returns (subscription, created)."""
    return await upsert_for_user(deps, keys.subscription_of(user_id), Q.upsert_subscription, user_id, _args(body))
