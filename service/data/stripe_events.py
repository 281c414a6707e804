"""Stripe events -> subscriptions, safe against retries, reordering and early arrival.

Every event of a handled type is stored once (by its id) in stripe_events. A subscription's state is
the fold of all its stored events in `created` order, each event setting the fields it knows (a
customer.subscription.* event: status, price, period end, cancel-at-period-end; an invoice event:
status only). So:
* a duplicate is recognised by its id and changes nothing;
* an event older than those applied changes only fields no newer event has set, i.e. nothing that
  in-order delivery would not also have ended with;
* an event for a customer or user not linked yet waits in stripe_events and is folded in when
  checkout.session.completed links them.
Events of one customer are applied one at a time (an advisory lock), each in one transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from ..deps import Deps
from ..ids import new_id
from ..problems import Problem
from ..queries import Q
from . import keys

log = logging.getLogger("service.stripe")

STATUS_MAP = {
    "trialing": "TRIALING", "active": "ACTIVE", "past_due": "PAST_DUE", "unpaid": "PAST_DUE",
    "canceled": "CANCELLED", "incomplete": "INACTIVE", "incomplete_expired": "INACTIVE", "paused": "INACTIVE",
}
SUBSCRIPTION_EVENTS = {f"customer.subscription.{s}" for s in ("created", "updated", "deleted", "paused", "resumed")}
INVOICE_EVENTS = {"invoice.paid": "ACTIVE", "invoice.payment_failed": "PAST_DUE"}
CHECKOUT = "checkout.session.completed"
HANDLED = SUBSCRIPTION_EVENTS | set(INVOICE_EVENTS) | {CHECKOUT}


class StripeEvent(msgspec.Struct):
    """A Stripe event as Stripe sends it (more fields are allowed and ignored); `data.object` is the
    subscription, invoice or checkout session the event is about."""

    id: str
    type: str
    created: int
    data: dict


@dataclass
class Fields:
    """What the events set; a field absent from `values` is left as it is."""

    values: dict = field(default_factory=dict)


def _id_of(value) -> str | None:
    """Stripe expands some references into objects; either way we want the id."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def references(event: StripeEvent) -> tuple[str | None, str | None, str | None]:
    """(subscription id, customer id, user id) named by an event."""
    obj = event.data.get("object") or {}
    if event.type in SUBSCRIPTION_EVENTS:
        return _id_of(obj.get("id")), _id_of(obj.get("customer")), None
    if event.type in INVOICE_EVENTS:
        sub = _id_of(obj.get("subscription"))
        if sub is None:  # newer API versions: invoice.parent.subscription_details.subscription
            details = ((obj.get("parent") or {}).get("subscription_details") or {})
            sub = _id_of(details.get("subscription"))
        return sub, _id_of(obj.get("customer")), None
    if event.type == CHECKOUT:
        user = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("userId")
        return _id_of(obj.get("subscription")), _id_of(obj.get("customer")), user if isinstance(user, str) else None
    return None, None, None


def _timestamp(seconds) -> datetime | None:
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return datetime.fromtimestamp(seconds, UTC)
    return None


def fields_set_by(event_type: str, obj: dict) -> dict:
    if event_type in SUBSCRIPTION_EVENTS:
        status = STATUS_MAP.get(obj.get("status"))
        if event_type == "customer.subscription.deleted":
            status = "CANCELLED"
        items = ((obj.get("items") or {}).get("data") or [{}])
        first = items[0] if items else {}
        price = _id_of((first or {}).get("price"))
        period_end = obj.get("current_period_end", (first or {}).get("current_period_end"))
        values = {"stripePriceId": price, "currentPeriodEnd": _timestamp(period_end),
                  "cancelAtPeriodEnd": bool(obj.get("cancel_at_period_end", False))}
        if status is not None:
            values["status"] = status
        return values
    if event_type in INVOICE_EVENTS:
        return {"status": INVOICE_EVENTS[event_type]}
    return {}


def parse_event(payload: bytes) -> StripeEvent:
    try:
        return msgspec.json.decode(payload, type=StripeEvent)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, f"not a Stripe event: {exc}") from None


async def apply_event(deps: Deps, event: StripeEvent, payload: bytes) -> str:
    """Store and apply one event; returns applied, pending, duplicate or ignored."""
    if event.type not in HANDLED:
        return "ignored"
    sub_id, customer_id, user_id = references(event)
    if event.type in INVOICE_EVENTS and sub_id is None:
        return "ignored"  # a one-off invoice (no subscription) says nothing about the subscription's status
    lock_key = customer_id or sub_id or user_id or event.id
    invalidate_user = None
    async with deps.db.transaction() as conn:
        await conn.execute(Q.stripe_lock_customer, lock_key)
        stored = await conn.fetchval(Q.stripe_insert_event, event.id, event.type, event.created, sub_id,
                                     customer_id, msgspec.json.decode(payload))
        if stored is None:
            return "duplicate"
        if event.type == CHECKOUT:
            if user_id is None or not await conn.fetchval(Q.user_exists, user_id):
                return "pending"
            row = await conn.fetchrow(Q.stripe_link_checkout, new_id(), user_id, customer_id, sub_id)
        else:
            row = await conn.fetchrow(Q.stripe_find_subscription, sub_id, customer_id)
            if row is None:
                return "pending"
        invalidate_user = await _fold_into(conn, row, sub_id, customer_id)
    if invalidate_user:
        await deps.cache.invalidate(keys=(keys.subscription_of(invalidate_user),))
    return "applied"


async def _fold_into(conn, row, event_sub_id: str | None = None, event_customer_id: str | None = None) -> str:
    # A row found by its customer alone names no subscription yet: the event's links it.
    sub_id = row["stripeSubscriptionId"] or event_sub_id
    customer_id = row["stripeCustomerId"] or event_customer_id
    events = await conn.fetch(Q.stripe_events_of_subscription, sub_id, customer_id)
    values: dict = {}
    for event in events:
        obj = (event["payload"].get("data") or {}).get("object") or {}
        values.update(fields_set_by(event["type"], obj))
        ref_sub, ref_customer, _ = references(StripeEvent(event["id"], event["type"], event["created"],
                                                           event["payload"].get("data") or {}))
        sub_id = sub_id or ref_sub
        customer_id = customer_id or ref_customer
    args = [row["id"], customer_id, sub_id]
    for name in ("stripePriceId", "status", "currentPeriodEnd", "cancelAtPeriodEnd"):
        args += [name in values, values.get(name)]
    user_id = await conn.fetchval(Q.stripe_apply_state, *args)
    await conn.execute(Q.stripe_mark_applied, [e["id"] for e in events])
    if sub_id and events:
        newest = events[-1]
        await conn.execute(Q.stripe_record_newest, sub_id, newest["created"], newest["id"])
    return user_id
