"""A user's subscription (API.md § Subscriptions)."""

from __future__ import annotations

from ..data import subscriptions
from ..deps import deps_of
from ..routing import (
    READ,
    WRITE,
    RouteTable,
    cached_json,
    read_body,
    upserted,
)
from ..schemas import Subscription, SubscriptionIn

routes = RouteTable("subscriptions")


@routes.add("GET", "/v1/users/{id}/subscription", scope=READ, summary="The user's subscription",
            answer=Subscription, errors=(404,))
async def get_subscription(request):
    return cached_json(await subscriptions.get_subscription(deps_of(request), request.match_info["id"]),
                       "subscription")


@routes.add("PUT", "/v1/users/{id}/subscription", scope=WRITE,
            summary="Create (201) or replace (200) the user's subscription", body=SubscriptionIn,
            answer=Subscription, also=(201,), errors=(404, 409))
async def put_subscription(request):
    body = await read_body(request, SubscriptionIn)
    row, created = await subscriptions.put_subscription(deps_of(request), request.match_info["id"], body)
    return upserted(row, created, request.rel_url.raw_path)
