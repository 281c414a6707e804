"""GET /v1/stripe/events (+ /{id}): the stored Stripe events and their outcomes, for ops.

Write scope: payloads hold customers' names, emails and addresses, and these routes exist to find
events to replay or resolve, which is an operator's job, not a reader's. The list leaves the payload
out; GET /v1/stripe/events/{id} returns it."""

from __future__ import annotations

from typing import Any

import msgspec

from ..deps import deps_of
from ..listing import ListSpec, integer, text, time
from ..problems import not_found
from ..queries import Q
from ..routing import WRITE, RouteTable, json_response
from ..schemas import ListPage, TimeOut
from .lists import _page

routes = RouteTable("stripe")

STRIPE_EVENTS = ListSpec(
    table="stripe_events",
    # indexes: stripe_events_pkey (0010); by outcome, type, customer, subscription (each with
    # "receivedAt") and by "receivedAt" alone (0015)
    fields=(text("id", indexed=True), text("type", indexed=True), integer("created"),
            text("stripeSubscriptionId", nullable=True, indexed=True),
            text("stripeCustomerId", nullable=True, indexed=True), text("outcome", nullable=True, indexed=True),
            text("reason", nullable=True, filter=False, sort=False), time("receivedAt", indexed=True),
            time("appliedAt", nullable=True)),
    default_sort=("-receivedAt",),
)


class StoredStripeEvent(msgspec.Struct):
    """A stored Stripe event (the list leaves the payload out)."""

    id: str
    type: str
    created: int
    stripeSubscriptionId: str | None
    stripeCustomerId: str | None
    outcome: str | None
    reason: str | None
    receivedAt: TimeOut
    appliedAt: TimeOut | None
    payload: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


@routes.add("GET", "/v1/stripe/events", scope=WRITE, answer=ListPage, listing=STRIPE_EVENTS, item=StoredStripeEvent,
            errors=(400,), summary="Stored Stripe events: filter by outcome, type, stripeCustomerId, stripeSubscriptionId")
async def list_stripe_events(request):
    return await _page(request, STRIPE_EVENTS, db=deps_of(request).db)


@routes.add("GET", "/v1/stripe/events/{id}", scope=WRITE, summary="One stored Stripe event with its payload",
            answer=StoredStripeEvent, errors=(404,))
async def get_stripe_event(request):
    row = await deps_of(request).db.fetchrow(Q.stripe_event_get, request.match_info["id"])
    if row is None:
        raise not_found("stripe event")
    return json_response(dict(row))
