"""Subscriptions, natal data, the chart cache, the cache, operations and the Stripe webhook relay."""

import hashlib
import hmac
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from astrowellness_data_client import (
    BadRequest,
    Chart,
    ChartType,
    NotFound,
    Subscription,
    SubscriptionStatus,
    ValidationFailed,
    eq,
)
from conftest import unique_email

PERIOD_END = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)


async def test_subscription_put_get_and_list(client):
    user = await client.users.create(email=unique_email("sub"))
    with pytest.raises(NotFound):
        await client.subscriptions.get(user.id)
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    created = await client.subscriptions.put(user.id, status=SubscriptionStatus.TRIALING, stripeCustomerId=customer,
                                             currentPeriodEnd=PERIOD_END)
    assert isinstance(created, Subscription) and created.status is SubscriptionStatus.TRIALING
    replaced = await client.subscriptions.put(user.id, status="ACTIVE", stripeCustomerId=customer,
                                              currentPeriodEnd=PERIOD_END, cancelAtPeriodEnd=True)
    assert replaced.id == created.id and replaced.cancelAtPeriodEnd and replaced.currentPeriodEnd == PERIOD_END
    assert await client.subscriptions.get(user.id) == replaced
    page = await client.subscriptions.list(filter={"stripeCustomerId": customer, "status": eq("ACTIVE")})
    assert [s.id for s in page.data] == [created.id]
    assert [s.userId async for s in client.subscriptions.iter(filter={"stripeCustomerId": customer})] == [user.id]
    with pytest.raises(NotFound):
        await client.subscriptions.put("no-such-user", status="ACTIVE")


async def test_natal_data_put_get_delete(client):
    user = await client.users.create(email=unique_email("natal"))
    born = datetime(1988, 2, 29, 23, 59, tzinfo=UTC)
    saved = await client.natal_data.put(user.id, birthDate=born, location="Porto", latitude=41.15, longitude=-8.61,
                                        timezone="Europe/Lisbon")
    assert (saved.birthDate, saved.latitude) == (born, 41.15)
    assert await client.natal_data.get(user.id) == saved
    with pytest.raises(ValidationFailed) as caught:
        await client.natal_data.put(user.id, birthDate=born, location="Porto", latitude=91)
    assert "latitude" in caught.value.fields
    await client.natal_data.delete(user.id)
    with pytest.raises(NotFound):
        await client.natal_data.get(user.id)


async def test_chart_cache(client):
    user = await client.users.create(email=unique_email("chart"))
    first = await client.charts.create(chartType="tropical", chartData={"sun": "Leo"}, userId=user.id,
                                       ttlSeconds=3600)
    newest = await client.charts.create(chartType=ChartType.TROPICAL, chartData={"sun": "Virgo"}, userId=user.id,
                                        interpretation="earthy", ttlSeconds=3600)
    await client.charts.create(chartType=ChartType.DRACONIC, chartData=[1, 2], userId=user.id,
                               expiresAt=datetime.now(UTC) + timedelta(hours=1))
    assert isinstance(first, Chart) and first.chartType is ChartType.TROPICAL
    assert await client.charts.get(first.id) == first
    assert (await client.charts.newest(user.id, "TROPICAL")).chartData == {"sun": "Virgo"}
    page = await client.charts.list(filter={"userId": user.id}, sort="-createdAt")
    assert len(page.data) == 3 and page.data[1].id == newest.id
    assert len([c async for c in client.charts.iter(filter={"userId": user.id}, page_size=2)]) == 3
    assert await client.charts.invalidate(user.id, ChartType.TROPICAL) == 2
    assert await client.charts.invalidate(user.id) == 1
    with pytest.raises(NotFound):
        await client.charts.newest(user.id, ChartType.TROPICAL)
    assert await client.charts.sweep() >= 0
    with pytest.raises(BadRequest):
        await client.charts.list(filter={"chartData": "x"})


async def test_cache_and_operations(client):
    stats = await client.cache.stats()
    assert stats.hits >= 0 and stats.backend
    user = await client.users.create(email=unique_email("cache"))
    await client.cache.invalidate([f"user:{user.id}"])
    assert (await client.ops.health()).status == "ok"
    ready = await client.ops.ready()
    assert (ready.status, ready.database) == ("ok", "ok")
    assert "# TYPE" in await client.ops.metrics()
    spec = await client.ops.openapi()
    assert spec["openapi"].startswith("3.") and "/v1/users" in spec["paths"]


def stripe_signature(payload: bytes, secret: str) -> str:
    stamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


async def test_stripe_webhook_relay(client):
    secret = os.environ.get("AW_STRIPE_SECRET")
    if not secret:
        pytest.fail("AW_STRIPE_SECRET is not set (tests/test_clients.py sets it)")
    event = {"id": f"evt_{uuid.uuid4().hex}", "object": "event", "type": "customer.created",
             "created": int(time.time()), "data": {"object": {"id": "cus_x", "object": "customer"}}}
    payload = json.dumps(event).encode()
    answer = await client.ops.stripe_webhook(payload, stripe_signature(payload, secret))
    assert answer.received is True and answer.outcome == "ignored"
    with pytest.raises(BadRequest):
        await client.ops.stripe_webhook(payload, stripe_signature(payload, "whsec_wrong"))
