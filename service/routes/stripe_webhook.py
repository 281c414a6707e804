"""POST /v1/stripe/webhook: authenticated by its Stripe-Signature, not by a service token.

A correctly signed event is always answered 200 with its outcome (Stripe would otherwise retry it for
days); only a missing or wrong signature, or a signature too old or too far in the future, is a 400."""

from __future__ import annotations

import hashlib
import hmac
import time

from aiohttp import web

from .. import tracing
from ..data import stripe_events
from ..data.stripe_objects import StripeEvent
from ..deps import deps_of
from ..metrics import STRIPE_EVENTS
from ..problems import Problem
from ..routing import PUBLIC, RouteTable, json_response, read_raw
from ..schemas import WebhookAnswer
from ..stripe_api import STRIPE_API

routes = RouteTable("stripe")


def _parse_header(header: str) -> tuple[int, list[bytes]]:
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise Problem(400, "Stripe-Signature has no valid timestamp") from None
        elif key == "v1" and value:
            signatures.append(value.encode("ascii", "replace"))
    if timestamp is None or not signatures:
        raise Problem(400, "Stripe-Signature needs t= and at least one v1=")
    return timestamp, signatures


def verify_signature(payload: bytes, header: str | None, secrets: list[str], tolerance: int,
                     now: float | None = None) -> None:
    """HMAC-SHA256 over the raw bytes `<t>.<body>` with any configured secret (several during rotation);
    the timestamp must be within `tolerance` seconds of now, in the past or the future."""
    if not secrets:
        raise Problem(503, "STRIPE_WEBHOOK_SECRET is not configured")
    if not header:
        raise Problem(400, "Stripe-Signature header is missing")
    timestamp, signatures = _parse_header(header)
    signed = str(timestamp).encode() + b"." + payload
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest().encode()
        if any(hmac.compare_digest(expected, given) for given in signatures):
            break
    else:
        raise Problem(400, "Stripe-Signature does not match the payload")
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise Problem(400, "Stripe-Signature timestamp is outside the tolerance")


@routes.add("POST", "/v1/stripe/webhook", scope=PUBLIC, summary="Stripe events (signed with Stripe-Signature)",
            body=StripeEvent, answer=WebhookAnswer, errors=(400, 408),
            headers=(("Stripe-Signature", "t=<unix time>,v1=<HMAC-SHA256 hex>"),))
async def stripe_webhook(request: web.Request):
    deps = deps_of(request)
    payload = await read_raw(request)  # unauthenticated until the signature is checked: 408 when slow
    secrets = [s.strip() for s in deps.settings.stripe_webhook_secret.split(",") if s.strip()]
    verify_signature(payload, request.headers.get("Stripe-Signature"), secrets,
                     deps.settings.stripe_tolerance_seconds)
    with tracing.span("stripe apply_event") as span:
        outcome = await stripe_events.receive(deps, payload, fetcher(request.app))
        if span is not None:
            span.set_attribute("stripe.event.type", outcome.event_type)
            span.set_attribute("stripe.event.outcome", outcome.outcome)
    STRIPE_EVENTS.labels(outcome.outcome).inc()
    return json_response(outcome.answer())


def fetcher(app: web.Application):
    """The Subscription reader of STRIPE_API_KEY, or None (then the event's own object decides)."""
    api = app.get(STRIPE_API)
    return api.subscription if api is not None else None

