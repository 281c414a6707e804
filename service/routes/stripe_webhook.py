"""POST /v1/stripe/webhook: authenticated by its Stripe-Signature, not by a service token."""

from __future__ import annotations

import stripe
from aiohttp import web

from .. import tracing
from ..data import stripe_events
from ..deps import deps_of
from ..metrics import STRIPE_EVENTS
from ..problems import Problem
from ..routing import PUBLIC, RouteTable, json_response, read_raw
from ..schemas import WebhookAnswer

routes = RouteTable("stripe")


def verify_signature(payload: bytes, header: str | None, secrets: list[str], tolerance: int) -> None:
    """Any configured secret may have signed it (several during rotation)."""
    if not secrets:
        raise Problem(503, "STRIPE_WEBHOOK_SECRET is not configured")
    if not header:
        raise Problem(400, "Stripe-Signature header is missing")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload.decode("utf-8", "replace"), header, secret, tolerance)
            return
        except stripe.SignatureVerificationError:
            continue
    raise Problem(400, "Stripe-Signature does not match the payload, or is too old")


@routes.add("POST", "/v1/stripe/webhook", scope=PUBLIC, summary="Stripe events (signed with Stripe-Signature)",
            body=stripe_events.StripeEvent, answer=WebhookAnswer, errors=(400, 408),
            headers=(("Stripe-Signature", "t=<unix time>,v1=<HMAC-SHA256 hex>"),))
async def stripe_webhook(request: web.Request):
    deps = deps_of(request)
    payload = await read_raw(request)
    secrets = [s.strip() for s in deps.settings.stripe_webhook_secret.split(",") if s.strip()]
    verify_signature(payload, request.headers.get("Stripe-Signature"), secrets,
                     deps.settings.stripe_tolerance_seconds)
    event = stripe_events.parse_event(payload)
    with tracing.span("stripe apply_event", **{"stripe.event.type": event.type}) as span:
        outcome = await stripe_events.apply_event(deps, event, payload)
        if span is not None:
            span.set_attribute("stripe.event.outcome", outcome)
    STRIPE_EVENTS.labels(outcome).inc()
    return json_response({"received": True, "outcome": outcome})
