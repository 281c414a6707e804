"""GET /v1/stripe/events (+ /{id}): the stored Stripe events and their outcomes, for ops.

Write scope: payloads hold customers' names, emails and addresses, and these routes exist to find
events to replay or resolve, which is an operator's job, not a reader's. The list leaves the payload
out; GET /v1/stripe/events/{id} returns it."""

from __future__ import annotations

from ..deps import deps_of
from ..listing import ListSpec, integer, text, time
from ..problems import not_found
from ..queries import Q
from ..routing import WRITE, RouteTable, json_response
from ..schemas import ListPage
from .lists import LIST_QUERY, _page

routes = RouteTable("stripe")

STRIPE_EVENTS = ListSpec(
    table="stripe_events",
    fields=(text("id"), text("type"), integer("created"), text("stripeSubscriptionId", nullable=True),
            text("stripeCustomerId", nullable=True), text("outcome", nullable=True),
            text("reason", nullable=True, sort=False), time("receivedAt"), time("appliedAt", nullable=True)),
    default_sort=("-receivedAt",),
)


@routes.add("GET", "/v1/stripe/events", scope=WRITE, answer=ListPage, query=LIST_QUERY, errors=(400,),
            summary="Stored Stripe events: filter by outcome, type, stripeCustomerId, stripeSubscriptionId")
async def list_stripe_events(request):
    return await _page(request, STRIPE_EVENTS, db=deps_of(request).db)


@routes.add("GET", "/v1/stripe/events/{id}", scope=WRITE, summary="One stored Stripe event with its payload",
            errors=(404,))
async def get_stripe_event(request):
    row = await deps_of(request).db.fetchrow(Q.stripe_event_get, request.match_info["id"])
    if row is None:
        raise not_found("stripe event")
    return json_response(dict(row))
