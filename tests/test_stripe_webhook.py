"""POST /v1/stripe/webhook: signatures, status mapping, checkout linking, retries, reordering, storms."""

import asyncio
import random
import time
from datetime import UTC, datetime

import asyncpg
import pytest

from service.app import create_app
from service.queries import Q
from tests.conftest import READ, STRIPE_SECRET, WRITE, make_settings
from tests.stripe_helpers import (
    checkout_event,
    create_user,
    deliver,
    deliver_ok,
    encode,
    event,
    invoice_event,
    sign,
    stored_event,
    subscription_event,
    subscription_row,
    uid,
)

T0 = 1_750_000_000  # event `created` times: any increasing seconds do


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def linked_user(client, created=T0):
    """A user whose checkout has completed: (user id, customer id, subscription id)."""
    user_id, customer, sub = await create_user(client), uid("cus"), uid("sub")
    await deliver_ok(client, checkout_event(user_id=user_id, customer=customer, sub=sub, created=created))
    return user_id, customer, sub


async def api_subscription(client, user_id):
    r = await client.get(f"/v1/users/{user_id}/subscription", headers=READ)
    assert r.status == 200, await r.text()
    return await r.json()


# ---- signatures ---------------------------------------------------------------------------------------


async def test_valid_signature_is_accepted_and_applied(client, deps):
    user_id, customer, sub = await create_user(client), uid("cus"), uid("sub")
    evt = checkout_event(user_id=user_id, customer=customer, sub=sub, created=T0)
    r = await deliver(client, evt)
    assert r.status == 200, await r.text()
    assert await stored_event(deps, evt["id"]) is not None
    sub_row = await api_subscription(client, user_id)
    assert (sub_row["stripeCustomerId"], sub_row["stripeSubscriptionId"]) == (customer, sub)


async def assert_rejected(client, deps, r, evt):
    assert r.status == 400, await r.text()
    problem = await r.json()
    assert problem["code"] == "bad_request"
    assert await stored_event(deps, evt["id"]) is None


async def test_wrong_secret_is_400_and_nothing_stored(client, deps):
    user_id = await create_user(client)
    evt = checkout_event(user_id=user_id, customer=uid("cus"), sub=uid("sub"), created=T0)
    r = await deliver(client, evt, secret="whsec_somebody_else")
    await assert_rejected(client, deps, r, evt)
    r = await client.get(f"/v1/users/{user_id}/subscription", headers=READ)
    assert r.status == 404


async def test_stale_timestamp_is_400(client, deps):
    user_id = await create_user(client)
    evt = checkout_event(user_id=user_id, customer=uid("cus"), sub=uid("sub"), created=T0)
    r = await deliver(client, evt, timestamp=int(time.time()) - 301)
    await assert_rejected(client, deps, r, evt)
    # Well inside the 300 s tolerance: accepted.
    r = await deliver(client, evt, timestamp=int(time.time()) - 200)
    assert r.status == 200, await r.text()
    assert await stored_event(deps, evt["id"]) is not None


async def test_tampered_body_is_400(client, deps):
    user_id, customer, sub = await linked_user(client)
    evt = subscription_event("updated", sub=sub, customer=customer, created=T0 + 1, status="active")
    header = sign(encode(evt))
    evt["data"]["object"]["status"] = "canceled"  # changed after signing
    r = await deliver(client, evt, header=header)
    await assert_rejected(client, deps, r, evt)
    assert (await api_subscription(client, user_id))["status"] == "INACTIVE"


@pytest.mark.parametrize("header", ["", "garbage", "t=notanumber,v1=abc", "t=1700000000", "v1=deadbeef"])
async def test_missing_or_malformed_header_is_400(client, deps, header):
    evt = checkout_event(user_id=uid("user"), customer=uid("cus"), sub=uid("sub"), created=T0)
    r = await client.post("/v1/stripe/webhook", data=encode(evt),
                          headers={"Stripe-Signature": header} if header else {})
    await assert_rejected(client, deps, r, evt)


async def test_signed_but_not_an_event_is_200_rejected_and_stored(client, deps):
    # Stripe would retry an error for days; a signed body is Stripe's (or its signer's) and is kept for ops.
    for body in (b"not json", b"{}", b'{"id": "evt_unreadable_x", "type": "x"}', b"[1,2]"):
        r = await deliver(client, body)
        assert r.status == 200, (body, await r.text())
        answer = await r.json()
        assert answer["outcome"] == "rejected" and answer["reason"], answer
    row = await deps.db.fetchrow("SELECT outcome, reason FROM stripe_events WHERE id = 'evt_unreadable_x'")
    assert row["outcome"] == "rejected" and "created" in row["reason"]


async def test_webhook_needs_no_service_token_and_ignores_one(client):
    user_id = await create_user(client)
    evt = checkout_event(user_id=user_id, customer=uid("cus"), sub=uid("sub"), created=T0)
    body = encode(evt)
    r = await client.post("/v1/stripe/webhook", data=body, headers={**WRITE})  # a token is no signature
    assert r.status == 400


async def test_secret_rotation_accepts_old_and_new(aiohttp_client, migrated_database_url, redis_url):
    settings = make_settings(migrated_database_url, redis_url, stripe_webhook_secret="whsec_old, whsec_new")
    client = await aiohttp_client(create_app(settings))
    user_id = await create_user(client)
    customer, sub = uid("cus"), uid("sub")
    r = await deliver(client, checkout_event(user_id=user_id, customer=customer, sub=sub, created=T0),
                      secret="whsec_old")
    assert r.status == 200, await r.text()
    r = await deliver(client, subscription_event("updated", sub=sub, customer=customer, created=T0 + 1),
                      secret="whsec_new")
    assert r.status == 200, await r.text()
    for other in ("whsec_other", STRIPE_SECRET, "whsec_old,whsec_new"):
        r = await deliver(client, subscription_event("updated", sub=sub, customer=customer, created=T0 + 2,
                                                     status="past_due"), secret=other)
        assert r.status == 400, other
    assert (await api_subscription(client, user_id))["status"] == "ACTIVE"


async def test_header_with_several_signatures_matches_any(client):
    # Stripe sends one v1 per active secret during rotation; one matching is enough.
    user_id, customer, sub = await linked_user(client)
    evt = subscription_event("updated", sub=sub, customer=customer, created=T0 + 1, status="trialing")
    body = encode(evt)
    good = sign(body)
    t, v1 = good.split(",")
    bad = sign(body, "whsec_elsewhere").split(",")[1]
    r = await deliver(client, body, header=f"{t},{bad},{v1}")
    assert r.status == 200, await r.text()
    assert (await api_subscription(client, user_id))["status"] == "TRIALING"


# ---- status mapping and fields -------------------------------------------------------------------------

STATUSES = [
    ("trialing", "TRIALING"), ("active", "ACTIVE"), ("past_due", "PAST_DUE"), ("unpaid", "PAST_DUE"),
    ("canceled", "CANCELLED"), ("incomplete", "INACTIVE"), ("incomplete_expired", "INACTIVE"),
    ("paused", "INACTIVE"),
]


@pytest.mark.parametrize("stripe_status,expected", STATUSES)
async def test_status_mapping(client, stripe_status, expected):
    user_id, customer, sub = await linked_user(client)
    # Start from a different status, so the mapping has to change it.
    start = "active" if expected != "ACTIVE" else "trialing"
    await deliver_ok(client, subscription_event("created", sub=sub, customer=customer, created=T0 + 1, status=start))
    assert (await api_subscription(client, user_id))["status"] != expected
    await deliver_ok(client, subscription_event("updated", sub=sub, customer=customer, created=T0 + 2,
                                                status=stripe_status))
    assert (await api_subscription(client, user_id))["status"] == expected


async def test_deleted_is_cancelled(client):
    user_id, customer, sub = await linked_user(client)
    await deliver_ok(client, subscription_event("created", sub=sub, customer=customer, created=T0 + 1))
    assert (await api_subscription(client, user_id))["status"] == "ACTIVE"
    await deliver_ok(client, subscription_event("deleted", sub=sub, customer=customer, created=T0 + 2,
                                                status="canceled"))
    assert (await api_subscription(client, user_id))["status"] == "CANCELLED"


async def test_paused_and_resumed(client):
    user_id, customer, sub = await linked_user(client)
    await deliver_ok(client, subscription_event("created", sub=sub, customer=customer, created=T0 + 1))
    await deliver_ok(client, subscription_event("paused", sub=sub, customer=customer, created=T0 + 2, status="paused"))
    assert (await api_subscription(client, user_id))["status"] == "INACTIVE"
    await deliver_ok(client, subscription_event("resumed", sub=sub, customer=customer, created=T0 + 3, status="active"))
    assert (await api_subscription(client, user_id))["status"] == "ACTIVE"


async def test_price_period_end_and_cancel_at_period_end(client):
    user_id, customer, sub = await linked_user(client)
    await deliver_ok(client, subscription_event("created", sub=sub, customer=customer, created=T0 + 1,
                                                price="price_basic", period_end=1_900_000_000))
    got = await api_subscription(client, user_id)
    assert got["stripePriceId"] == "price_basic"
    assert got["currentPeriodEnd"] == iso(1_900_000_000) == "2030-03-17T17:46:40.000Z"
    assert got["cancelAtPeriodEnd"] is False

    await deliver_ok(client, subscription_event("updated", sub=sub, customer=customer, created=T0 + 2,
                                                price="price_pro", period_end=1_902_592_000,
                                                cancel_at_period_end=True))
    got = await api_subscription(client, user_id)
    assert (got["stripePriceId"], got["currentPeriodEnd"], got["cancelAtPeriodEnd"]) == \
        ("price_pro", iso(1_902_592_000), True)
    assert (got["stripeCustomerId"], got["stripeSubscriptionId"]) == (customer, sub)


async def test_period_end_on_the_item_in_newer_api_versions(client):
    user_id, customer, sub = await linked_user(client)
    evt = subscription_event("updated", sub=sub, customer=customer, created=T0 + 1)
    obj = evt["data"]["object"]
    del obj["current_period_end"]
    obj["items"]["data"][0]["current_period_end"] = 1_903_000_000
    await deliver_ok(client, evt)
    assert (await api_subscription(client, user_id))["currentPeriodEnd"] == iso(1_903_000_000)


async def test_invoices(client, deps):
    user_id, customer, sub = await linked_user(client)
    await deliver_ok(client, subscription_event("created", sub=sub, customer=customer, created=T0 + 1,
                                                price="price_x"))
    before = await subscription_row(deps, user_id)
    # Invoice events never set the status (the subscription's own events do): issue 12.
    answer = await deliver_ok(client, invoice_event("invoice.payment_failed", sub=sub, customer=customer,
                                                    created=T0 + 2))
    assert answer["outcome"] == "ignored"
    assert await subscription_row(deps, user_id) == before
    await deliver_ok(client, invoice_event("invoice.paid", sub=sub, customer=customer, created=T0 + 3))
    assert await subscription_row(deps, user_id) == before
    assert before["status"] == "ACTIVE" and before["stripePriceId"] == "price_x"


async def test_invoice_in_newer_api_shape(client, deps):
    user_id, customer, sub = await linked_user(client)
    evt = invoice_event("invoice.payment_failed", sub=sub, customer=customer, created=T0 + 1)
    obj = evt["data"]["object"]
    del obj["subscription"]
    obj["parent"] = {"type": "subscription_details", "subscription_details": {"subscription": sub}}
    await deliver_ok(client, evt)
    assert (await api_subscription(client, user_id))["status"] == "INACTIVE"
    stored = await deps.db.fetchval('SELECT "stripeSubscriptionId" FROM stripe_events WHERE id = $1', evt["id"])
    assert stored == sub  # the subscription it bills is read from parent.subscription_details


async def test_invoice_without_a_subscription_does_not_touch_the_status(client, deps):
    # A one-off invoice of the same customer (no subscription on it) says nothing about the subscription.
    user_id, customer, sub = await linked_user(client)
    await deliver_ok(client, subscription_event("deleted", sub=sub, customer=customer, created=T0 + 1,
                                                status="canceled"))
    evt = invoice_event("invoice.paid", sub=sub, customer=customer, created=T0 + 2)
    del evt["data"]["object"]["subscription"]
    await deliver_ok(client, evt)
    assert (await api_subscription(client, user_id))["status"] == "CANCELLED"
    # and a later subscription event does not fold it in either
    await deliver_ok(client, subscription_event("updated", sub=sub, customer=customer, created=T0 + 3,
                                                status="canceled", price="price_late"))
    got = await api_subscription(client, user_id)
    assert (got["status"], got["stripePriceId"]) == ("CANCELLED", "price_late")


async def test_old_invoice_paid_does_not_revive_a_cancelled_subscription(client):
    user_id, customer, sub = await linked_user(client)
    await deliver_ok(client, subscription_event("created", sub=sub, customer=customer, created=T0 + 1))
    await deliver_ok(client, subscription_event("updated", sub=sub, customer=customer, created=T0 + 20,
                                                status="canceled"))
    assert (await api_subscription(client, user_id))["status"] == "CANCELLED"
    await deliver_ok(client, invoice_event("invoice.paid", sub=sub, customer=customer, created=T0 + 10))
    assert (await api_subscription(client, user_id))["status"] == "CANCELLED"
    # Nor does a newer one: only a Subscription object sets the status.
    await deliver_ok(client, invoice_event("invoice.paid", sub=sub, customer=customer, created=T0 + 30))
    assert (await api_subscription(client, user_id))["status"] == "CANCELLED"


async def test_older_subscription_event_changes_nothing(client):
    user_id, customer, sub = await linked_user(client)
    await deliver_ok(client, subscription_event("updated", sub=sub, customer=customer, created=T0 + 20,
                                                status="past_due", price="price_new", period_end=1_910_000_000,
                                                cancel_at_period_end=True))
    before = await api_subscription(client, user_id)
    await deliver_ok(client, subscription_event("updated", sub=sub, customer=customer, created=T0 + 10,
                                                status="active", price="price_old", period_end=1_900_000_000))
    after = await api_subscription(client, user_id)
    assert {k: after[k] for k in ("status", "stripePriceId", "currentPeriodEnd", "cancelAtPeriodEnd")} == \
        {k: before[k] for k in ("status", "stripePriceId", "currentPeriodEnd", "cancelAtPeriodEnd")}
    assert after["status"] == "PAST_DUE"


# ---- checkout and early events -------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["client_reference_id", "metadata"])
async def test_checkout_links_customer_and_subscription(client, via):
    user_id, customer, sub = await create_user(client), uid("cus"), uid("sub")
    await deliver_ok(client, checkout_event(user_id=user_id, customer=customer, sub=sub, created=T0, via=via))
    got = await api_subscription(client, user_id)
    assert (got["userId"], got["stripeCustomerId"], got["stripeSubscriptionId"]) == (user_id, customer, sub)
    await deliver_ok(client, subscription_event("updated", sub=sub, customer=customer, created=T0 + 1,
                                                status="trialing"))
    assert (await api_subscription(client, user_id))["status"] == "TRIALING"


async def test_checkout_links_an_existing_subscription_row(client):
    user_id = await create_user(client)
    r = await client.put(f"/v1/users/{user_id}/subscription", json={"status": "INACTIVE"}, headers=WRITE)
    assert r.status == 201
    customer, sub = uid("cus"), uid("sub")
    await deliver_ok(client, checkout_event(user_id=user_id, customer=customer, sub=sub, created=T0))
    got = await api_subscription(client, user_id)
    assert (got["stripeCustomerId"], got["stripeSubscriptionId"]) == (customer, sub)


async def test_events_before_checkout_wait_and_are_applied_by_it(client, deps):
    user_id, customer, sub = await create_user(client), uid("cus"), uid("sub")
    early = [
        subscription_event("created", sub=sub, customer=customer, created=T0 + 1, status="incomplete",
                           price="price_a"),
        subscription_event("updated", sub=sub, customer=customer, created=T0 + 2, status="active",
                           price="price_b", period_end=1_905_000_000),
        invoice_event("invoice.paid", sub=sub, customer=customer, created=T0 + 3),
    ]
    for evt in early[:2]:
        r = await deliver(client, evt)
        assert r.status == 200, await r.text()
        row = await stored_event(deps, evt["id"])
        assert row is not None and row["appliedAt"] is None
        assert (await r.json())["outcome"] == "pending"
    assert (await deliver_ok(client, early[2]))["outcome"] == "ignored"
    r = await client.get(f"/v1/users/{user_id}/subscription", headers=READ)
    assert r.status == 404

    await deliver_ok(client, checkout_event(user_id=user_id, customer=customer, sub=sub, created=T0 + 4))
    got = await api_subscription(client, user_id)
    assert (got["stripeCustomerId"], got["stripeSubscriptionId"]) == (customer, sub)
    assert (got["status"], got["stripePriceId"], got["currentPeriodEnd"]) == ("ACTIVE", "price_b", iso(1_905_000_000))
    for evt in early:
        assert (await stored_event(deps, evt["id"]))["appliedAt"] is not None


async def test_checkout_for_an_unknown_user_is_stored_and_answered_200(client, deps):
    missing_user = uid("user")
    evt = checkout_event(user_id=missing_user, customer=uid("cus"), sub=uid("sub"), created=T0)
    r = await deliver(client, evt)
    assert r.status == 200, await r.text()
    assert await stored_event(deps, evt["id"]) is not None
    assert await deps.db.fetchval('SELECT count(*) FROM subscriptions WHERE "userId" = $1', missing_user) == 0


async def test_subscription_event_for_a_row_known_only_by_customer(client):
    # The row names the customer but not yet the subscription (set by an admin, or a checkout without one).
    user_id, customer, sub = await create_user(client), uid("cus"), uid("sub")
    r = await client.put(f"/v1/users/{user_id}/subscription", json={"stripeCustomerId": customer}, headers=WRITE)
    assert r.status == 201
    await deliver_ok(client, subscription_event("created", sub=sub, customer=customer, created=T0 + 1,
                                                status="trialing", price="price_t"))
    got = await api_subscription(client, user_id)
    assert (got["stripeSubscriptionId"], got["status"], got["stripePriceId"]) == (sub, "TRIALING", "price_t")


# ---- duplicates and unknown types ----------------------------------------------------------------------


async def test_duplicate_delivery_changes_nothing(client, deps):
    user_id, customer, sub = await linked_user(client)
    first = subscription_event("updated", sub=sub, customer=customer, created=T0 + 1, status="active")
    await deliver_ok(client, first)
    # Someone corrects the row by hand after the event was applied; a redelivery must not undo that.
    r = await client.put(f"/v1/users/{user_id}/subscription",
                         json={"stripeCustomerId": customer, "stripeSubscriptionId": sub, "status": "PAST_DUE",
                               "stripePriceId": "price_manual"}, headers=WRITE)
    assert r.status == 200
    before = await subscription_row(deps, user_id)
    for _ in range(3):
        await deliver_ok(client, first)
    assert await subscription_row(deps, user_id) == before
    assert await deps.db.fetchval("SELECT count(*) FROM stripe_events WHERE id = $1", first["id"]) == 1


async def test_duplicate_of_an_older_event_after_a_newer_one(client):
    user_id, customer, sub = await linked_user(client)
    old = subscription_event("updated", sub=sub, customer=customer, created=T0 + 1, status="active")
    new = subscription_event("updated", sub=sub, customer=customer, created=T0 + 2, status="past_due")
    await deliver_ok(client, old)
    await deliver_ok(client, new)
    await deliver_ok(client, old)
    assert (await api_subscription(client, user_id))["status"] == "PAST_DUE"


@pytest.mark.parametrize("event_type", ["customer.created", "payment_intent.succeeded", "charge.refunded"])
async def test_unknown_event_types_are_acknowledged_and_ignored(client, deps, event_type):
    user_id, customer, sub = await linked_user(client)
    await deliver_ok(client, subscription_event("created", sub=sub, customer=customer, created=T0 + 1))
    before = await subscription_row(deps, user_id)
    obj = {"id": sub, "object": "subscription", "customer": customer, "status": "canceled",
           "items": {"data": [{"price": {"id": "price_other"}}]}}
    r = await deliver(client, event(event_type, obj, T0 + 2))
    assert r.status == 200, await r.text()
    assert await subscription_row(deps, user_id) == before


# ---- failure inside: 500, nothing half-written ---------------------------------------------------------


async def test_failure_inside_is_500_and_leaves_nothing(client, deps, monkeypatch):
    user_id, customer, sub = await linked_user(client)
    await deliver_ok(client, subscription_event("created", sub=sub, customer=customer, created=T0 + 1))
    before = await subscription_row(deps, user_id)

    real_fetchval = asyncpg.connection.Connection.fetchval

    async def write_then_fail(self, query, *args, **kwargs):
        value = await real_fetchval(self, query, *args, **kwargs)
        if query == Q.stripe_record:  # the event, its state and the row are written, then ...
            raise RuntimeError("disk on fire")
        return value

    monkeypatch.setattr(asyncpg.connection.Connection, "fetchval", write_then_fail)
    evt = subscription_event("updated", sub=sub, customer=customer, created=T0 + 2, status="past_due",
                             price="price_z")
    r = await deliver(client, evt)
    assert r.status == 500
    problem = await r.json()
    assert problem["code"] == "internal_error" and problem["requestId"]
    assert "disk on fire" not in await r.text()
    assert await stored_event(deps, evt["id"]) is None  # so Stripe's retry will apply it
    assert await subscription_row(deps, user_id) == before
    assert (await api_subscription(client, user_id))["status"] == "ACTIVE"

    monkeypatch.setattr(asyncpg.connection.Connection, "fetchval", real_fetchval)
    await deliver_ok(client, evt)  # Stripe's retry
    got = await api_subscription(client, user_id)
    assert (got["status"], got["stripePriceId"]) == ("PAST_DUE", "price_z")


# ---- the storm -----------------------------------------------------------------------------------------


def life_of_a_subscription(customer: str, sub: str, user_id: str, ending: str) -> list[dict]:
    """~30 events of one subscription, `created` increasing; ids unique to this call."""
    t = iter(range(T0, T0 + 1000, 7))
    period = iter(range(1_900_000_000, 2_000_000_000, 2_592_000))
    s = dict(sub=sub, customer=customer)
    events = [
        subscription_event("created", **s, created=next(t), status="incomplete", price="price_basic",
                           period_end=next(period)),
        checkout_event(user_id=user_id, customer=customer, sub=sub, created=next(t)),
        invoice_event("invoice.paid", **s, created=next(t)),
        subscription_event("updated", **s, created=next(t), status="trialing", price="price_basic",
                           period_end=next(period)),
        subscription_event("updated", **s, created=next(t), status="active", price="price_basic",
                           period_end=next(period)),
        invoice_event("invoice.paid", **s, created=next(t)),
        subscription_event("updated", **s, created=next(t), status="active", price="price_pro",
                           period_end=next(period)),
        invoice_event("invoice.payment_failed", **s, created=next(t)),
        subscription_event("updated", **s, created=next(t), status="past_due", price="price_pro",
                           period_end=next(period)),
        invoice_event("invoice.payment_failed", **s, created=next(t)),
        subscription_event("updated", **s, created=next(t), status="unpaid", price="price_pro",
                           period_end=next(period)),
        invoice_event("invoice.paid", **s, created=next(t)),
        subscription_event("updated", **s, created=next(t), status="active", price="price_pro",
                           period_end=next(period), cancel_at_period_end=True),
        subscription_event("updated", **s, created=next(t), status="active", price="price_pro",
                           period_end=next(period), cancel_at_period_end=False),
        subscription_event("paused", **s, created=next(t), status="paused", price="price_pro",
                           period_end=next(period)),
        subscription_event("resumed", **s, created=next(t), status="active", price="price_pro",
                           period_end=next(period)),
        invoice_event("invoice.paid", **s, created=next(t)),
        subscription_event("updated", **s, created=next(t), status="active", price="price_family",
                           period_end=next(period)),
        invoice_event("invoice.payment_failed", **s, created=next(t)),
        invoice_event("invoice.paid", **s, created=next(t)),
        subscription_event("updated", **s, created=next(t), status="trialing", price="price_family",
                           period_end=next(period)),
        subscription_event("updated", **s, created=next(t), status="active", price="price_family",
                           period_end=next(period)),
        invoice_event("invoice.paid", **s, created=next(t)),
        subscription_event("updated", **s, created=next(t), status="active", price="price_premium",
                           period_end=next(period)),
        invoice_event("invoice.payment_failed", **s, created=next(t)),
        subscription_event("updated", **s, created=next(t), status="past_due", price="price_premium",
                           period_end=next(period)),
        subscription_event("updated", **s, created=next(t), status="active", price="price_premium",
                           period_end=next(period), cancel_at_period_end=True),
    ]
    if ending == "deleted":
        events += [
            invoice_event("invoice.paid", **s, created=next(t)),
            subscription_event("updated", **s, created=next(t), status="active", price="price_premium",
                               period_end=next(period), cancel_at_period_end=True),
            subscription_event("deleted", **s, created=next(t), status="canceled", price="price_premium",
                               period_end=next(period), cancel_at_period_end=True),
        ]
    else:  # ends on invoices: they set nothing, so everything comes from the last update
        events += [
            subscription_event("updated", **s, created=next(t), status="active", price="price_gold",
                               period_end=1_999_999_999, cancel_at_period_end=False),
            invoice_event("invoice.paid", **s, created=next(t)),
            invoice_event("invoice.payment_failed", **s, created=next(t)),
        ]
    return events


EXPECTED_END = {
    "deleted": {"status": "CANCELLED", "stripePriceId": "price_premium", "cancelAtPeriodEnd": True},
    "invoices": {"status": "ACTIVE", "stripePriceId": "price_gold", "cancelAtPeriodEnd": False,
                 "currentPeriodEnd": iso(1_999_999_999)},
}


def comparable(row: dict) -> dict:
    return {k: row[k] for k in ("stripePriceId", "status", "currentPeriodEnd", "cancelAtPeriodEnd")}


@pytest.mark.parametrize("ending", ["deleted", "invoices"])
async def test_event_storm_ends_as_in_order_delivery(client, deps, ending):
    # Reference: the same life delivered once, in order, for another user and customer.
    ref_user, ref_customer, ref_sub = await create_user(client), uid("cus"), uid("sub")
    for evt in life_of_a_subscription(ref_customer, ref_sub, ref_user, ending):
        await deliver_ok(client, evt)
    expected = await subscription_row(deps, ref_user)
    assert (expected["stripeCustomerId"], expected["stripeSubscriptionId"]) == (ref_customer, ref_sub)
    for key, value in EXPECTED_END[ending].items():  # and by hand
        assert (await api_subscription(client, ref_user))[key] == value, key

    user_id, customer, sub = await create_user(client), uid("cus"), uid("sub")
    life = life_of_a_subscription(customer, sub, user_id, ending)
    assert len(life) == 30
    rng = random.Random(f"storm-{ending}")
    deliveries = [evt for evt in life for _ in range(rng.choice((2, 3)))]
    rng.shuffle(deliveries)
    responses = await asyncio.gather(*(deliver(client, evt) for evt in deliveries))
    assert [r.status for r in responses] == [200] * len(deliveries)

    got = await subscription_row(deps, user_id)
    assert (got["stripeCustomerId"], got["stripeSubscriptionId"]) == (customer, sub)
    assert comparable(got) == comparable(expected)
    assert comparable(await api_subscription(client, user_id)) == \
        comparable(await api_subscription(client, ref_user))
    ids = [evt["id"] for evt in life]
    assert await deps.db.fetchval("SELECT count(*) FROM stripe_events WHERE id = ANY($1::text[])", ids) == 30
    assert await deps.db.fetchval(
        'SELECT count(*) FROM stripe_events WHERE id = ANY($1::text[]) AND "appliedAt" IS NULL', ids) == 0
    newest = await deps.db.fetchval(
        'SELECT "lastEventCreated" FROM stripe_subscription_state WHERE "stripeSubscriptionId" = $1', sub)
    assert newest == max(evt["created"] for evt in life if evt["type"].startswith("customer.subscription."))


async def test_an_event_applied_elsewhere_while_this_one_waited_for_the_lock_is_a_duplicate(client, deps):
    """Another instance holds the customer's lock and stores the same event; ours waits for the lock and
    must then see that event (its lookup's snapshot is taken after the lock, not before): `duplicate`,
    and the row is not written a second time."""
    user_id, customer, sub = await linked_user(client)
    await deliver_ok(client, subscription_event("created", sub=sub, customer=customer, created=T0 + 1))
    evt = subscription_event("updated", sub=sub, customer=customer, created=T0 + 2, status="past_due")
    other = await asyncpg.connect(deps.settings.database_url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", customer)
        await other.execute(
            "INSERT INTO stripe_events (id, type, created, \"stripeSubscriptionId\", \"stripeCustomerId\", payload, "
            "outcome, \"appliedAt\") VALUES ($1, $2, $3, $4, $5, '{}'::jsonb, 'applied', now())",
            evt["id"], evt["type"], evt["created"], sub, customer)
        delivery = asyncio.create_task(deliver(client, evt))
        await asyncio.sleep(0.5)  # ours is waiting for the lock now
        assert not delivery.done()
        await tx.commit()
        r = await delivery
    finally:
        await other.close()
    assert r.status == 200
    assert (await r.json())["outcome"] == "duplicate"
    assert (await subscription_row(deps, user_id))["status"] == "ACTIVE"  # ours did not apply it again
