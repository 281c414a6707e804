"""Signed Stripe events for the webhook tests, built and signed the way Stripe does it.

Stripe-Signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with the endpoint secret>`.
Signed here with hmac directly (not with the stripe package the service verifies with), so the tests
check the service against Stripe's documented scheme rather than against itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

from tests.conftest import READ, STRIPE_SECRET, WRITE, unique_email

WEBHOOK = "/v1/stripe/webhook"


def sign(payload: bytes | str, secret: str = STRIPE_SECRET, timestamp: int | None = None) -> str:
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode("utf-8"), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def event(event_type: str, obj: dict, created: int, event_id: str | None = None) -> dict:
    return {
        "id": event_id or uid("evt"),
        "object": "event",
        "api_version": "2024-06-20",
        "type": event_type,
        "created": created,
        "livemode": False,
        "data": {"object": obj},
    }


def subscription_event(event_type: str, *, sub: str, customer: str, created: int, status: str = "active",
                       price: str = "price_basic", period_end: int | None = 1_900_000_000,
                       cancel_at_period_end: bool = False, event_id: str | None = None) -> dict:
    obj = {
        "id": sub,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "current_period_end": period_end,
        "items": {"object": "list", "data": [
            {"id": uid("si"), "object": "subscription_item", "price": {"id": price, "object": "price"}},
        ]},
    }
    return event(f"customer.subscription.{event_type}", obj, created, event_id)


def invoice_event(event_type: str, *, sub: str, customer: str, created: int, event_id: str | None = None) -> dict:
    obj = {"id": uid("in"), "object": "invoice", "customer": customer, "subscription": sub}
    return event(event_type, obj, created, event_id)


def checkout_event(*, user_id: str, customer: str, sub: str, created: int, via: str = "client_reference_id",
                   event_id: str | None = None) -> dict:
    obj = {"id": uid("cs"), "object": "checkout.session", "customer": customer, "subscription": sub,
           "mode": "subscription", "client_reference_id": None, "metadata": {}}
    if via == "client_reference_id":
        obj["client_reference_id"] = user_id
    else:
        obj["metadata"] = {"userId": user_id}
    return event("checkout.session.completed", obj, created, event_id)


def encode(evt: dict) -> bytes:
    return json.dumps(evt, separators=(",", ":")).encode("utf-8")


async def deliver(client, evt: dict | bytes, secret: str = STRIPE_SECRET, timestamp: int | None = None,
                  header: str | None = None):
    body = evt if isinstance(evt, bytes) else encode(evt)
    headers = {"Content-Type": "application/json",
               "Stripe-Signature": header if header is not None else sign(body, secret, timestamp)}
    return await client.post(WEBHOOK, data=body, headers=headers)


async def deliver_ok(client, evt: dict) -> dict:
    r = await deliver(client, evt)
    assert r.status == 200, await r.text()
    return await r.json()


async def shown_subscription(client, user_id: str) -> dict:
    """The user's subscription as GET /v1/users/{id}/subscription answers it (through the cache)."""
    r = await client.get(f"/v1/users/{user_id}/subscription", headers=READ)
    assert r.status == 200, await r.text()
    return await r.json()


async def create_user(client) -> str:
    r = await client.post("/v1/users", json={"email": unique_email("stripe")}, headers=WRITE)
    assert r.status == 201, await r.text()
    return (await r.json())["id"]


async def stored_event(deps, event_id: str):
    return await deps.db.fetchrow("SELECT id, type, created, \"appliedAt\" FROM stripe_events WHERE id = $1",
                                  event_id)


async def subscription_row(deps, user_id: str) -> dict | None:
    row = await deps.db.fetchrow(
        'SELECT "stripeCustomerId", "stripeSubscriptionId", "stripePriceId", status::text AS status, '
        '"currentPeriodEnd", "cancelAtPeriodEnd" FROM subscriptions WHERE "userId" = $1', user_id)
    return dict(row) if row else None
