"""Stripe's API (STRIPE_API_KEY set): the current Subscription objects an event only points at.

Uses the `stripe` package's async client over aiohttp, so no call blocks the event loop. The base URL
is STRIPE_API_BASE when set (tests point it at a local fake of Stripe's API).
"""

from __future__ import annotations

import logging

import stripe
from aiohttp import web

from .deps import SETTINGS

log = logging.getLogger("service.stripe")

STRIPE_API = web.AppKey("stripe_api", object)


class StripeUnavailable(Exception):
    """Stripe's API did not answer with the object (network, 5xx, auth): the caller falls back."""


class StripeApi:
    def __init__(self, api_key: str, base: str = "", timeout: float = 10.0):
        self.http = stripe.AIOHTTPClient(timeout=timeout)
        options = {"base_addresses": {"api": base}} if base else {}
        self.client = stripe.StripeClient(api_key, http_client=self.http, max_network_retries=2, **options)

    async def subscription(self, subscription_id: str) -> dict:
        try:
            found = await self.client.v1.subscriptions.retrieve_async(subscription_id)
        except stripe.StripeError as exc:
            raise StripeUnavailable(f"Stripe's API: {type(exc).__name__}: {str(exc)[:200]}") from None
        return found.to_dict()

    async def subscriptions(self, *, created_gte: int | None = None, starting_after: str | None = None,
                            limit: int = 100):
        """One page of every subscription (any status), newest first: (objects, has_more)."""
        params: dict = {"status": "all", "limit": limit}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        if starting_after:
            params["starting_after"] = starting_after
        try:
            page = await self.client.v1.subscriptions.list_async(params)
        except stripe.StripeError as exc:
            raise StripeUnavailable(f"Stripe's API: {type(exc).__name__}: {str(exc)[:200]}") from None
        return [obj.to_dict() for obj in page.data], bool(page.has_more)

    async def close(self) -> None:
        await self.http.close_async()


def open_stripe_api(settings) -> StripeApi | None:
    if not settings.stripe_api_key:
        return None
    return StripeApi(settings.stripe_api_key, settings.stripe_api_base, settings.stripe_api_timeout)


async def stripe_api_context(app: web.Application):
    """App cleanup context: one client per app, closed on shutdown."""
    api = open_stripe_api(app[SETTINGS])
    app[STRIPE_API] = api
    yield
    if api is not None:
        await api.close()
