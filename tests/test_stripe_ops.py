"""STRIPE_API_KEY mode against a local fake of Stripe's API, the ops list route, stripe-replay --stored,
stripe-sync (resumable, alongside webhooks) and the retention of stored events."""

import asyncio
import copy

import asyncpg
import pytest

from service import migrate, stripe_commands
from service.app import create_app
from service.commands import CommandError
from service.data import stripe_events
from service.deps import DEPS
from tests.conftest import READ, WRITE, make_settings
from tests.stripe_fake import API_KEY, FakeStripe
from tests.stripe_gen import StripeWorld, SubscriptionLife
from tests.stripe_helpers import create_user
from tests.stripe_helpers import (
    deliver_ok as outcome,  # the answer: {received, outcome, reason?}
)
from tests.stripe_helpers import shown_subscription as shown

V = "2025-03-31.basil"




@pytest.fixture
async def fake(aiohttp_server):
    stripe = FakeStripe()
    server = await aiohttp_server(stripe.app)
    stripe.url = str(server.make_url("")).rstrip("/")
    return stripe


@pytest.fixture
def keyed_settings(migrated_database_url, redis_url, fake):
    return make_settings(migrated_database_url, redis_url, stripe_api_key=API_KEY, stripe_api_base=fake.url)


@pytest.fixture
async def keyed(aiohttp_client, keyed_settings):
    return await aiohttp_client(create_app(keyed_settings))


async def checkout(client, world, life, user_id):
    session = world.checkout_session(customer=life.obj["customer"], subscription=life.id, user_id=user_id)
    return await outcome(client, world.event("checkout.session.completed", session))


# ---- STRIPE_API_KEY: the event is a trigger ----------------------------------------------------------------


async def test_with_an_api_key_the_event_triggers_a_read_of_the_subscription(keyed, fake):
    world = StripeWorld(V, seed="api")
    user_id = await create_user(keyed)
    life = SubscriptionLife(world, customer=world.id("cus"))
    stale = life.created_event()  # says active ...
    life.change(status="past_due")
    fake.put(copy.deepcopy(life.obj))  # ... but Stripe already says past_due
    assert (await checkout(keyed, world, life, user_id))["outcome"] == "applied"
    assert (await shown(keyed, user_id))["status"] == "PAST_DUE"  # the checkout read it already
    assert (await outcome(keyed, stale))["outcome"] in ("applied", "ignored")
    assert (await shown(keyed, user_id))["status"] == "PAST_DUE"
    assert (f"/v1/subscriptions/{life.id}", {}) in fake.requests
    # An invoice event is a trigger too: the payment went through, Stripe's object says active.
    world.tick(3600)
    life.change(status="active")
    fake.put(copy.deepcopy(life.obj))
    paid = world.event("invoice.paid", world.invoice(life.obj, status="paid"))
    assert (await outcome(keyed, paid))["outcome"] == "applied"
    assert (await shown(keyed, user_id))["status"] == "ACTIVE"


async def test_a_stalled_stripe_api_holds_no_database_connection(aiohttp_client, migrated_database_url,
                                                                 redis_url, fake):
    # One pooled connection: if the webhook held it while waiting for Stripe, every other request would
    # wait for the pool and answer 503.
    client = await aiohttp_client(create_app(make_settings(
        migrated_database_url, redis_url, stripe_api_key=API_KEY, stripe_api_base=fake.url,
        pool_min_size=1, pool_max_size=1, pool_acquire_timeout=1.0, cache_enabled=False)))
    world = StripeWorld(V, seed="stall")
    user_id = await create_user(client)
    life = SubscriptionLife(world, customer=world.id("cus"))
    fake.put(copy.deepcopy(life.obj))
    fake.hold = asyncio.Event()
    delivery = asyncio.create_task(outcome(client, life.created_event()))
    for _ in range(200):  # until the webhook is waiting on Stripe
        if any(path == f"/v1/subscriptions/{life.id}" for path, _ in fake.requests):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the webhook never called Stripe")
    r = await client.get(f"/v1/users/{user_id}", headers=READ)
    assert r.status == 200, await r.text()
    fake.hold.set()
    assert (await delivery)["outcome"] in ("applied", "pending")


async def test_when_stripe_api_fails_the_event_object_decides(keyed, fake):
    world = StripeWorld(V, seed="api-down")
    user_id = await create_user(keyed)
    life = SubscriptionLife(world, customer=world.id("cus"), status="trialing", trial_days=7)
    await checkout(keyed, world, life, user_id)
    fake.failing = True
    assert (await outcome(keyed, life.created_event()))["outcome"] == "applied"
    assert (await shown(keyed, user_id))["status"] == "TRIALING"
    answer = await outcome(keyed, world.event("invoice.paid", world.invoice(life.obj, status="paid", amount=0)))
    assert answer["outcome"] == "pending" and "replay" in answer["reason"]
    # Once Stripe answers again, replaying the pending refresh applies Stripe's object.
    fake.failing = False
    world.tick(7 * 86400)
    life.change(status="active", new_period=True)
    fake.put(copy.deepcopy(life.obj))
    deps = keyed.server.app[DEPS]
    results = [r async for r in stripe_events.replay_stored(deps, ["pending"], fake_fetch(keyed))]
    assert "applied" in [r.outcome for r in results]
    assert (await shown(keyed, user_id))["status"] == "ACTIVE"


def fake_fetch(client):
    from service.stripe_api import STRIPE_API

    return client.server.app[STRIPE_API].subscription


# ---- the ops list route -------------------------------------------------------------------------------------


async def test_list_of_stored_events_filters_and_needs_write_scope(client):
    world = StripeWorld(V, seed="list")
    user_id = await create_user(client)
    life = SubscriptionLife(world, customer=world.id("cus"))
    created = life.created_event()
    await outcome(client, created)  # pending: no checkout yet
    world.tick()
    paid = world.event("invoice.paid", world.invoice(life.obj, status="paid"))
    await outcome(client, paid)  # ignored
    await checkout(client, world, life, user_id)

    r = await client.get("/v1/stripe/events", headers=READ)
    assert r.status == 403
    customer = life.obj["customer"]
    r = await client.get(f"/v1/stripe/events?stripeCustomerId=eq.{customer}&count=none", headers=WRITE)
    assert r.status == 200, await r.text()
    items = (await r.json())["data"]
    assert {i["type"] for i in items} == {"customer.subscription.created", "invoice.paid",
                                          "checkout.session.completed"}
    assert all("payload" not in i for i in items)
    r = await client.get(f"/v1/stripe/events?stripeSubscriptionId=eq.{life.id}&type=eq.invoice.paid"
                         "&outcome=eq.ignored", headers=WRITE)
    items = (await r.json())["data"]
    assert [(i["id"], i["reason"]) for i in items] == [(paid["id"], "invoice events do not set a subscription's status")]
    # The pending event was applied when the checkout linked its customer.
    r = await client.get(f"/v1/stripe/events/{created['id']}", headers=WRITE)
    got = await r.json()
    assert (got["outcome"], got["payload"]["data"]["object"]["id"]) == ("applied", life.id)
    r = await client.get("/v1/stripe/events?outcome=bogus", headers=WRITE)
    assert r.status == 400
    assert (await client.get("/v1/stripe/events/evt_missing", headers=WRITE)).status == 404


# ---- stripe-replay --stored: ops resolve a conflict ---------------------------------------------------------


async def test_replaying_a_conflict_after_ops_resolved_it(client):
    world = StripeWorld(V, seed="resolve")
    user_id = await create_user(client)
    old = SubscriptionLife(world, customer=world.id("cus"))
    await checkout(client, world, old, user_id)
    await outcome(client, old.created_event())
    world.tick(86400)
    new = SubscriptionLife(world, customer=world.id("cus"), price="price_pro")
    await outcome(client, new.created_event())
    assert (await checkout(client, world, new, user_id))["outcome"] == "conflict"
    # Ops cancel the old subscription in Stripe; its event arrives; the conflict is replayed.
    world.tick()
    await outcome(client, old.change("customer.subscription.deleted", status="canceled", ended_at=world.now))
    deps = client.server.app[DEPS]
    results = [r.outcome async for r in stripe_events.replay_stored(deps, ["conflict"])]
    assert results.count("applied") >= 1
    got = await shown(client, user_id)
    assert (got["stripeSubscriptionId"], got["stripePriceId"], got["status"]) == (new.id, "price_pro", "ACTIVE")


async def test_replaying_pending_events_after_a_customer_is_linked_without_checkout(client):
    world = StripeWorld(V, seed="pending-replay")
    user_id = await create_user(client)
    life = SubscriptionLife(world, customer=world.id("cus"), status="trialing", trial_days=7)
    # Its customer is not linked to anyone yet: stored, pending.
    assert (await outcome(client, life.created_event()))["outcome"] == "pending"
    # Ops link the customer by hand (an import), then replay what waited, as docs/operations.md says.
    r = await client.put(f"/v1/users/{user_id}/subscription", headers=WRITE,
                         json={"stripeCustomerId": life.obj["customer"]})
    assert r.status in (200, 201), await r.text()
    deps = client.server.app[DEPS]
    results = [r.outcome async for r in stripe_events.replay_stored(deps, ["pending"])]
    assert "applied" in results, results
    got = await shown(client, user_id)
    assert (got["stripeSubscriptionId"], got["status"]) == (life.id, "TRIALING")


# ---- stripe-sync ------------------------------------------------------------------------------------------------


async def test_stripe_sync_backfills_resumes_and_yields_to_newer_webhooks(keyed, keyed_settings, fake):
    world = StripeWorld(V, seed="sync")
    users, lives = [], []
    for n in range(5):
        user_id = await create_user(keyed)
        life = SubscriptionLife(world, customer=world.id("cus"), price=f"price_{n}")
        await checkout(keyed, world, life, user_id)  # no Subscription event yet: the row is INACTIVE
        users.append(user_id)
        lives.append(life)
        world.tick(60)
    assert {(await shown(keyed, u))["status"] for u in users} == {"INACTIVE"}
    for life in lives:
        fake.put(copy.deepcopy(life.obj))
    # A webhook newer than the sync's read: the sync must not undo it.
    world.now = 4_000_000_000
    fake.failing = True  # applied from the event itself
    await outcome(keyed, lives[0].change(status="past_due"))
    fake.failing = False
    fake.put(dict(copy.deepcopy(lives[0].obj), status="active"))  # a stale list entry

    fake.page_size, fake.fail_after_pages = 2, 1
    with pytest.raises(CommandError, match="rerun to resume"):
        await asyncio.to_thread(stripe_commands.stripe_sync, keyed_settings, "2020-01-01")
    fake.fail_after_pages = None
    assert await asyncio.to_thread(stripe_commands.stripe_sync, keyed_settings, "2020-01-01") == 0
    starts = [q.get("starting_after") for path, q in fake.requests if path == "/v1/subscriptions"]
    assert starts[0] is None and starts[2] is not None  # the rerun resumed after the first page
    for n, user_id in enumerate(users):
        got = await shown(keyed, user_id)
        assert (got["stripePriceId"], got["status"]) == (f"price_{n}", "PAST_DUE" if n == 0 else "ACTIVE"), n


async def test_stripe_sync_needs_an_api_key(settings):
    with pytest.raises(CommandError, match="STRIPE_API_KEY"):
        stripe_commands.stripe_sync(settings, None)


# ---- retention ------------------------------------------------------------------------------------------------


async def test_retention_prunes_old_final_events_and_keeps_pending_and_conflicts(client):
    deps = client.server.app[DEPS]
    world = StripeWorld(V, seed="retention")
    ids = {}
    for outcome_name in ("applied", "ignored", "duplicate", "rejected", "pending", "conflict"):
        for age in (40, 5):
            event_id = world.id("evt")
            ids[(outcome_name, age)] = event_id
            await deps.db.execute(
                "INSERT INTO stripe_events (id, type, created, payload, outcome, \"receivedAt\") VALUES "
                "($1, 'invoice.paid', 1, '{}'::jsonb, $2, (now() AT TIME ZONE 'UTC') - make_interval(days => $3))",
                event_id, outcome_name, age)
    assert (await stripe_events.prune_events(deps, batch_size=2)).count >= 4
    left = {key for key, event_id in ids.items()
            if await deps.db.fetchval("SELECT 1 FROM stripe_events WHERE id = $1", event_id)}
    assert left == {key for key in ids if key[1] == 5 or key[0] in ("pending", "conflict")}


async def test_an_upgraded_database_keeps_what_the_old_fold_decided(empty_database):
    """Rows stored before 0014 (state without a status, events without an outcome) get them from 0016,
    so a retried old event cannot revive a canceled subscription and old events can be pruned/replayed."""
    from tests.test_migrate_safety import migrated_up_to

    await migrated_up_to(empty_database, "0010_stripe_events")
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("""INSERT INTO users (id, email, "updatedAt") VALUES ('u_old', 'old@example.com', now())""")
        await conn.execute("""INSERT INTO subscriptions (id, "userId", "stripeCustomerId", "stripeSubscriptionId", status)
                              VALUES ('s_old', 'u_old', 'cus_old', 'sub_old', 'CANCELLED')""")
        await conn.execute("""INSERT INTO stripe_subscription_state ("stripeSubscriptionId", "lastEventCreated", "lastEventId")
                              VALUES ('sub_old', 1700000000, 'evt_old_2')""")
        await conn.execute("""INSERT INTO stripe_events (id, type, created, "stripeSubscriptionId", "stripeCustomerId",
                                                         payload, "appliedAt")
                              VALUES ('evt_old_1', 'customer.subscription.updated', 1690000000, 'sub_old', 'cus_old',
                                      '{}', now()),
                                     ('evt_old_3', 'customer.subscription.updated', 1700000001, 'sub_x', 'cus_x',
                                      '{}', NULL)""")
        await asyncio.to_thread(migrate.apply, empty_database)
        state = await conn.fetchrow("""SELECT status, "stripeCustomerId" FROM stripe_subscription_state
                                       WHERE "stripeSubscriptionId" = 'sub_old'""")
        assert (state["status"], state["stripeCustomerId"]) == ("canceled", "cus_old")
        outcomes = dict(await conn.fetch("SELECT id, outcome FROM stripe_events ORDER BY id"))
        assert outcomes == {"evt_old_1": "applied", "evt_old_3": "pending"}
    finally:
        await conn.close()
