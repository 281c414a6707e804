"""The webhook's rules on realistic objects (tests/stripe_gen.py): no-op events, terminal states, same-second
ties, which subscription is the user's, checkout modes, scheduled cancellation, hijack, outcomes of
hostile bodies, signatures and slow bodies."""

import asyncio
import hashlib
import hmac
import json
import time

import asyncpg
import pytest

from service.app import create_app
from tests.conftest import STRIPE_SECRET, WRITE, make_settings
from tests.stripe_gen import StripeWorld, SubscriptionLife, iso
from tests.stripe_helpers import (
    checkout_event,
    create_user,
    deliver,
    encode,
    subscription_row,
    uid,
)
from tests.stripe_helpers import (
    deliver_ok as outcome,  # the answer: {received, outcome, reason?}
)
from tests.stripe_helpers import shown_subscription as shown

V = "2025-09-30.clover"




async def linked(client, world: StripeWorld, **life) -> tuple[str, SubscriptionLife]:
    """A user whose checkout completed for a new active subscription (events in Stripe's order)."""
    user_id = await create_user(client)
    sub = SubscriptionLife(world, customer=world.id("cus"), **life)
    assert (await outcome(client, sub.created_event()))["outcome"] == "pending"
    world.tick()
    session = world.checkout_session(customer=sub.obj["customer"], subscription=sub.id, user_id=user_id)
    assert (await outcome(client, world.event("checkout.session.completed", session)))["outcome"] == "applied"
    return user_id, sub


# ---- no-op events -----------------------------------------------------------------------------------------


async def test_no_op_events_leave_updated_at_and_the_cache_alone(client, deps):
    world = StripeWorld(V, seed="noop")
    user_id, sub = await linked(client, world)
    older = sub.change(cancel_at_period_end=False, metadata={"note": "x"})  # same shown state
    world.tick(10)
    current = sub.change(price="price_pro")
    assert (await outcome(client, current))["outcome"] == "applied"
    before = await subscription_row(deps, user_id)
    updated_at = await deps.db.fetchval('SELECT "updatedAt" FROM subscriptions WHERE "userId" = $1', user_id)
    assert (await shown(client, user_id))["stripePriceId"] == "price_pro"  # now cached
    # Behind the cache's back: a cached answer that survives shows no invalidation happened.
    await deps.db.execute('UPDATE subscriptions SET "stripePriceId" = \'price_behind\' WHERE "userId" = $1', user_id)
    updated_at = await deps.db.fetchval('SELECT "updatedAt" FROM subscriptions WHERE "userId" = $1', user_id)
    world.tick(10)
    same = sub.change(metadata={"note": "y"})  # newer, but nothing the row shows changes
    answers = [await outcome(client, evt) for evt in (current, older, sub.created_event())]
    assert [a["outcome"] for a in answers] == ["duplicate", "ignored", "ignored"]
    await outcome(client, same)
    assert await deps.db.fetchval('SELECT "updatedAt" FROM subscriptions WHERE "userId" = $1', user_id) == updated_at
    assert (await shown(client, user_id))["stripePriceId"] == "price_pro"  # still the cached copy
    assert before["stripePriceId"] == "price_pro"


# ---- terminal and same-second -----------------------------------------------------------------------------


@pytest.mark.parametrize("terminal", ["canceled", "incomplete_expired"])
async def test_terminal_states_are_terminal(client, terminal):
    world = StripeWorld(V, seed=f"terminal-{terminal}")
    user_id, sub = await linked(client, world, status="incomplete" if terminal != "canceled" else "active")
    world.tick()
    kind = "customer.subscription.deleted" if terminal == "canceled" else "customer.subscription.updated"
    end = sub.change(kind, status=terminal, ended_at=world.now)
    revive_same_second = sub.change(status="active")
    world.tick(60)
    revive_later = sub.change(status="active")
    for evt in (revive_same_second, end, revive_later, revive_same_second):
        await outcome(client, evt)
    expected = "CANCELLED" if terminal == "canceled" else "INACTIVE"
    assert (await shown(client, user_id))["status"] == expected


@pytest.mark.parametrize("ids", ["ascending", "descending"])
@pytest.mark.parametrize("order", ["stripe", "reversed"])
async def test_same_second_chain_of_previous_attributes(client, ids, order):
    """Payment fails and is retried successfully within one second: active -> past_due -> active."""
    world = StripeWorld(V, seed=f"chain-{ids}-{order}")
    user_id, sub = await linked(client, world)
    world.tick(30 * 86400)
    steps = [sub.change(status="past_due"), sub.change(status="active", latest_invoice=world.id("in"))]
    names = sorted(world.id("evt") for _ in steps)
    for evt, name in zip(steps, names if ids == "ascending" else names[::-1]):
        evt["id"] = name
    for evt in steps if order == "stripe" else steps[::-1]:
        await outcome(client, evt)
    assert (await shown(client, user_id))["status"] == "ACTIVE"


# ---- which subscription is the user's ---------------------------------------------------------------------


async def test_new_live_subscription_of_a_linked_customer_takes_over(client, deps):
    world = StripeWorld(V, seed="takeover")
    user_id, first = await linked(client, world)
    world.tick(86400)
    first_end = first.change("customer.subscription.deleted", status="canceled", ended_at=world.now)
    await outcome(client, first_end)
    world.tick(86400)
    # Created from the Dashboard for the same customer: no checkout.
    second = SubscriptionLife(world, customer=first.obj["customer"], price="price_pro", status="trialing",
                              trial_days=7)
    assert (await outcome(client, second.created_event()))["outcome"] == "applied"
    got = await shown(client, user_id)
    assert (got["stripeSubscriptionId"], got["status"], got["stripePriceId"]) == (second.id, "TRIALING", "price_pro")
    # A late event of the old, canceled subscription never displaces the live one.
    world.tick()
    answer = await outcome(client, first.change("customer.subscription.updated", price="price_late"))
    assert answer["outcome"] == "applied" and second.id in answer["reason"]
    assert (await shown(client, user_id))["stripeSubscriptionId"] == second.id


async def test_a_row_set_by_put_is_not_displaced_by_an_incomplete_subscription(client):
    # Linked by PUT /v1/users/{id}/subscription (an import, the old platform): no stored Stripe state.
    world = StripeWorld(V, seed="put-linked")
    user_id, customer, paid = await create_user(client), world.id("cus"), world.id("sub")
    r = await client.put(f"/v1/users/{user_id}/subscription", headers=WRITE, json={
        "stripeCustomerId": customer, "stripeSubscriptionId": paid, "status": "ACTIVE"})
    assert r.status in (200, 201), await r.text()
    # The backend creates a second subscription whose first payment fails: incomplete.
    second = SubscriptionLife(world, customer=customer, price="price_pro", status="incomplete")
    assert (await outcome(client, second.created_event()))["outcome"] == "applied"
    got = await shown(client, user_id)
    assert (got["stripeSubscriptionId"], got["status"]) == (paid, "ACTIVE")  # the paying customer stays ACTIVE
    # Once it is paid it is live and newer: it becomes the user's.
    world.tick()
    await outcome(client, second.change(status="active"))
    got = await shown(client, user_id)
    assert (got["stripeSubscriptionId"], got["status"]) == (second.id, "ACTIVE")


async def test_a_user_whose_put_row_is_cancelled_can_check_out_with_a_new_customer(client):
    user_id = await create_user(client)
    r = await client.put(f"/v1/users/{user_id}/subscription", headers=WRITE, json={
        "stripeCustomerId": uid("cus"), "stripeSubscriptionId": uid("sub"), "status": "CANCELLED"})
    assert r.status in (200, 201), await r.text()
    customer, sub = uid("cus"), uid("sub")
    answer = await outcome(client, checkout_event(user_id=user_id, customer=customer, sub=sub, created=2_000_000_000))
    assert answer["outcome"] == "applied", answer  # an ended subscription is no reason for a conflict
    got = await shown(client, user_id)
    assert (got["stripeCustomerId"], got["stripeSubscriptionId"]) == (customer, sub)


async def test_when_the_shown_subscription_ends_the_customers_other_live_one_is_shown(client):
    world = StripeWorld(V, seed="fallback")
    user_id, first = await linked(client, world)
    world.tick(86400)
    second = SubscriptionLife(world, customer=first.obj["customer"], price="price_pro", status="trialing",
                              trial_days=7)
    await outcome(client, second.created_event())
    assert (await shown(client, user_id))["stripeSubscriptionId"] == second.id
    world.tick(3600)
    await outcome(client, second.change("customer.subscription.deleted", status="canceled", ended_at=world.now))
    got = await shown(client, user_id)
    # The first subscription is still paid: the user is not shown CANCELLED.
    assert (got["stripeSubscriptionId"], got["status"]) == (first.id, "ACTIVE")


async def test_an_event_of_the_old_customer_never_writes_over_a_relink_that_committed_meanwhile(
        client, deps, migrated_database_url):
    world = StripeWorld(V, seed="relink-race")
    user_id, old = await linked(client, world)
    relink = await asyncpg.connect(migrated_database_url)
    try:
        # A checkout re-linking the user to a new customer: its row write is done, not committed yet.
        tx = relink.transaction()
        await tx.start()
        await relink.execute("""UPDATE subscriptions SET "stripeCustomerId" = 'cus_relinked',
                                "stripeSubscriptionId" = 'sub_relinked' WHERE "userId" = $1""", user_id)
        world.tick()
        late = asyncio.create_task(outcome(client, old.change(price="price_late")))
        for _ in range(250):  # until the old customer's event waits for that row
            if await deps.db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()"):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the event never waited for the row")
        await tx.commit()
        await late
    finally:
        await relink.close()
    row = await subscription_row(deps, user_id)
    assert (row["stripeCustomerId"], row["stripeSubscriptionId"]) == ("cus_relinked", "sub_relinked")


async def test_an_older_live_subscription_does_not_displace_a_newer_one(client):
    world = StripeWorld(V, seed="older-live")
    user_id, first = await linked(client, world)
    world.tick(86400)
    second = SubscriptionLife(world, customer=first.obj["customer"], price="price_pro")
    await outcome(client, second.created_event())
    assert (await shown(client, user_id))["stripeSubscriptionId"] == second.id
    world.tick()
    await outcome(client, first.change(price="price_other"))
    assert (await shown(client, user_id))["stripeSubscriptionId"] == second.id


@pytest.mark.parametrize("order", ["in order", "out of order"])
async def test_two_checkouts_of_one_user_end_on_the_newer(client, order):
    world = StripeWorld(V, seed=f"two-checkouts-{order}")
    user_id, customer = await create_user(client), world.id("cus")
    events = []
    for price in ("price_basic", "price_pro"):
        sub = SubscriptionLife(world, customer=customer, price=price)
        events.append((sub, [sub.created_event(), world.event("checkout.session.completed", world.checkout_session(
            customer=customer, subscription=sub.id, user_id=user_id))]))
        world.tick(3600)
    newer = events[1][0]
    deliveries = [e for _, evts in events for e in evts]
    if order == "out of order":
        deliveries = events[1][1][::-1] + events[0][1][::-1]
    for evt in deliveries:
        await outcome(client, evt)
    got = await shown(client, user_id)
    assert (got["stripeSubscriptionId"], got["stripePriceId"]) == (newer.id, "price_pro")


@pytest.mark.parametrize("mode", ["payment", "setup"])
async def test_checkout_in_payment_or_setup_mode_creates_no_row(client, deps, mode):
    world = StripeWorld(V, seed=f"mode-{mode}")
    user_id = await create_user(client)
    session = world.checkout_session(customer=world.id("cus"), subscription=None, user_id=user_id, mode=mode)
    answer = await outcome(client, world.event("checkout.session.completed", session))
    assert answer["outcome"] == "ignored" and mode in answer["reason"]
    assert await subscription_row(deps, user_id) is None


async def test_scheduled_cancellation_shows_cancel_at_period_end_and_cancel_at(client):
    world = StripeWorld(V, seed="cancel-at")
    user_id, sub = await linked(client, world, flexible=True)
    world.tick(86400)
    end = sub.obj["items"]["data"][0]["current_period_end"]
    await outcome(client, sub.change(cancel_at=end, canceled_at=world.now))
    assert sub.obj["cancel_at_period_end"] is False
    got = await shown(client, user_id)
    assert (got["cancelAtPeriodEnd"], got["cancelAt"], got["status"]) == (True, iso(end), "ACTIVE")
    world.tick(86400)
    await outcome(client, sub.change(cancel_at=None, canceled_at=None))
    got = await shown(client, user_id)
    assert (got["cancelAtPeriodEnd"], got["cancelAt"]) == (False, None)


# ---- no hijack ----------------------------------------------------------------------------------------------


async def test_checkout_naming_a_user_linked_to_another_live_customer_is_a_conflict(client, deps):
    world = StripeWorld(V, seed="hijack")
    user_id, sub = await linked(client, world)
    before = await subscription_row(deps, user_id)
    intruder = SubscriptionLife(world, customer=world.id("cus"))
    await outcome(client, intruder.created_event())
    session = world.checkout_session(customer=intruder.obj["customer"], subscription=intruder.id, user_id=user_id)
    evt = world.event("checkout.session.completed", session)
    answer = await outcome(client, evt)
    assert answer["outcome"] == "conflict" and sub.obj["customer"] in answer["reason"]
    assert await subscription_row(deps, user_id) == before
    row = await deps.db.fetchrow("SELECT outcome, reason FROM stripe_events WHERE id = $1", evt["id"])
    assert row["outcome"] == "conflict"
    # and a linked customer's checkout naming another user does not move the customer either
    other = await create_user(client)
    session = world.checkout_session(customer=sub.obj["customer"], subscription=sub.id, user_id=other)
    assert (await outcome(client, world.event("checkout.session.completed", session)))["outcome"] == "conflict"
    assert await subscription_row(deps, other) is None


# ---- a signed event is always 2xx ---------------------------------------------------------------------------


def hostile(world: StripeWorld, customer: str):
    """(name, event, expected outcome, words in the reason)"""
    def sub_event(**changes):
        life = SubscriptionLife(world, customer=customer)
        for key, value in changes.items():
            if key == "period_end":
                life.obj["items"]["data"][0]["current_period_end"] = value
            else:
                life.obj[key] = value
        return life.created_event()

    nul_metadata = sub_event(metadata={"note": "a\x00b"})
    nul_id = sub_event()
    nul_id["data"]["object"]["id"] = "sub_\x00evil"
    wrong_metadata = world.event("checkout.session.completed", world.checkout_session(
        customer=customer, subscription=world.id("sub"), user_id=None))
    wrong_metadata["data"]["object"]["metadata"] = {"userId": 12345}
    not_an_object = world.event("customer.subscription.updated", {})
    not_an_object["data"]["object"] = ["a", "list"]
    return [
        ("NUL in metadata", nul_metadata, "pending", ""),
        ("NUL in the id", nul_id, "rejected", "NUL"),
        ("metadata.userId a number", wrong_metadata, "rejected", "metadata.userId"),
        ("year 10000", sub_event(period_end=253_402_300_800), "rejected", "current_period_end"),
        ("unknown status", sub_event(status="frozen"), "rejected", "status"),
        ("items not a list", sub_event(items={"data": "nope"}), "rejected", "items"),
        ("object a list", not_an_object, "rejected", "data.object"),
        ("huge created", dict(sub_event(), created=10**30), "rejected", "created"),
    ]


async def test_hostile_signed_events_are_200_and_stored_with_an_outcome(client, deps):
    world = StripeWorld(V, seed="hostile")
    for name, evt, expected, words in hostile(world, world.id("cus")):
        answer = await outcome(client, evt)
        assert answer["outcome"] == expected, (name, answer)
        assert words in (answer.get("reason") or ""), (name, answer)
        event_id = evt["id"]
        row = await deps.db.fetchrow("SELECT outcome, reason, payload FROM stripe_events WHERE id = $1", event_id)
        assert row is not None and row["outcome"] == expected, name
        assert "\x00" not in json.dumps(row["payload"]), name


async def test_signature_is_checked_over_the_raw_bytes(client):
    body = b'{"id":"evt_raw_\xff","type":"x"}'
    header = sign_bytes(body)  # not UTF-8: signed as the bytes they are
    r = await deliver(client, body, header=header)
    assert r.status == 200, await r.text()
    assert (await r.json())["outcome"] == "rejected"
    # Another invalid byte in the same place (both decode to U+FFFD) is another body: not signed.
    r = await deliver(client, body.replace(b"\xff", b"\xfe"), header=header)
    assert r.status == 400


async def test_signed_bodies_nested_too_deep_are_200_rejected(client):
    # Deeper than the JSON decoder goes, and deep enough (with a NUL) to exhaust a recursive clean-up.
    too_deep = b'{"id":"evt_deep_1","type":"customer.subscription.updated","data":{"object":' + \
        b"[" * 5000 + b"]" * 5000 + b"}}"
    nul_deep = b'{"id":"evt_deep_2","type":"customer.subscription.updated","data":{"object":' + \
        b'{"a":' * 900 + b'"x\\u0000"' + b"}" * 900 + b"}}"
    for body in (too_deep, nul_deep):
        r = await deliver(client, body, header=sign_bytes(body))
        assert r.status == 200, await r.text()
        answer = await r.json()
        assert answer["outcome"] == "rejected" and "too deep" in answer["reason"], answer
        # Stored once: the same delivery again is a duplicate, not a second row.
        r = await deliver(client, body, header=sign_bytes(body))
        assert (await r.json())["outcome"] == "duplicate"


def sign_bytes(body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(STRIPE_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


async def test_future_timestamps_beyond_the_tolerance_are_400(client):
    world = StripeWorld(V, seed="future")
    evt = SubscriptionLife(world, customer=world.id("cus")).created_event()
    body = encode(evt)
    r = await deliver(client, body, header=sign_bytes(body, int(time.time()) + 301))
    assert r.status == 400
    r = await deliver(client, body, header=sign_bytes(body, int(time.time()) + 200))
    assert r.status == 200, await r.text()


async def test_slow_webhook_body_gets_408(aiohttp_client, migrated_database_url, redis_url):
    client = await aiohttp_client(create_app(make_settings(migrated_database_url, redis_url, body_read_timeout=0.5)))
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"POST /v1/stripe/webhook HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,v1=ab\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
    await writer.drain()
    started = time.monotonic()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    assert b" 408 " in status_line and time.monotonic() - started < 4
    writer.close()


async def test_concurrent_checkouts_of_one_user_with_two_customers(client, deps):
    """Both answered 200: one links the user, the other is a conflict (never a 500 on the unique userId)."""
    world = StripeWorld(V, seed="concurrent-checkouts")
    for _ in range(3):
        user_id = await create_user(client)
        events = []
        for _ in range(2):
            life = SubscriptionLife(world, customer=world.id("cus"))
            await outcome(client, life.created_event())
            events.append(world.event("checkout.session.completed", world.checkout_session(
                customer=life.obj["customer"], subscription=life.id, user_id=user_id)))
        answers = await asyncio.gather(*(deliver(client, evt) for evt in events))
        assert [r.status for r in answers] == [200, 200]
        assert sorted([(await r.json())["outcome"] for r in answers]) == ["applied", "conflict"]
        assert await deps.db.fetchval('SELECT count(*) FROM subscriptions WHERE "userId" = $1', user_id) == 1
