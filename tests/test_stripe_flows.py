"""Stripe's real event flows (tests/stripe_gen.py) in every API version, delivered in order, duplicated,
shuffled and with same-second events whose ids sort either way: the user's subscription must end as
Stripe's subscription ended, and show each intermediate state when delivered in order."""

import random

import pytest

from tests.conftest import READ
from tests.stripe_gen import (
    FLOWS,
    VERSIONS,
    build_flow,
    duplicated,
    in_one_second,
    shuffled,
)
from tests.stripe_helpers import create_user, deliver

SHOWN = ("stripeSubscriptionId", "status", "stripePriceId", "currentPeriodEnd", "cancelAtPeriodEnd")


async def shown(client, user_id) -> dict | None:
    r = await client.get(f"/v1/users/{user_id}/subscription", headers=READ)
    if r.status == 404:
        return None
    assert r.status == 200, await r.text()
    body = await r.json()
    return {k: body[k] for k in SHOWN}


async def deliver_all(client, events):
    for evt in events:
        r = await deliver(client, evt)
        assert r.status == 200, (evt["type"], await r.text())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(FLOWS))
async def test_flow(client, name, version):
    # In order: every intermediate state.
    user_id = await create_user(client)
    flow = build_flow(name, version, user_id, seed="in-order")
    for number, (evt, expected) in enumerate(flow.steps):
        r = await deliver(client, evt)
        assert r.status == 200, await r.text()
        assert await shown(client, user_id) == expected, (number, evt["type"])
    assert flow.final is not None and flow.final["stripeSubscriptionId"] == flow.life.id

    orders = {
        "shuffled": shuffled, "reversed": lambda events, rng: events[::-1],
        "ties-ids-ascending": lambda events, rng: in_one_second(events, "asc", rng),
        "ties-ids-descending": lambda events, rng: in_one_second(events, "desc", rng),
        "ties-shuffled-duplicated": lambda events, rng: shuffled(duplicated(events, rng), rng),
    }
    wrong = {}
    for order, arrange in orders.items():
        user_id = await create_user(client)
        flow = build_flow(name, version, user_id, seed=order)
        await deliver_all(client, arrange(flow.events, random.Random(f"{name}-{version}-{order}")))
        got = await shown(client, user_id)
        if got != flow.final:
            wrong[order] = {k: (got or {}).get(k) for k in SHOWN if (got or {}).get(k) != flow.final[k]}
    assert wrong == {}
