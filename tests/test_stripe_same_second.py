"""Same-second events of one subscription, in every delivery order (issue 12, rule 3).

Stripe's events of one second carry no usable order (their ids' tails are random), yet the state they leave
must be Stripe's final one whatever order they arrive in. Each test builds real Subscription objects with
tests/stripe_gen.py, changes several fields within one second (each change an event whose
previous_attributes names what it changed), and folds every permutation of the deliveries through the
service's rule, comparing with the object Stripe holds at the end."""

import itertools
import random

import pytest

from service.data import stripe_objects as so
from tests.stripe_gen import StripeWorld, SubscriptionLife
from tests.stripe_helpers import deliver_ok, shown_subscription
from tests.test_stripe_rules import V, linked

VERSIONS = ["2024-06-20", "2025-03-31.basil", "2025-09-30.clover", "2026-10-28.endive"]
NON_TERMINAL = ["trialing", "active", "past_due", "unpaid", "paused"]


def state_of(evt: dict) -> so.State:
    data = evt["data"]
    return so.subscription_state(data["object"], created=evt["created"], event_id=evt["id"], event_type=evt["type"],
                                 previous=data.get("previous_attributes"))


def fold(states: list[so.State]) -> so.State:
    """The stored state after applying `states` in this order, as the webhook does (advance's result)."""
    stored = None
    for candidate in states:
        following = so.advance(stored, candidate)
        if following is not None:
            stored = following
    return stored


def row_of(state: so.State) -> tuple:
    return state.row_values()


def expected_of(life: SubscriptionLife) -> tuple:
    """The row Stripe's final object gives, through the same mapping (compared fields of a full object)."""
    return so.subscription_state(life.obj, created=0, event_id="x", event_type="customer.subscription.updated"
                                 ).row_values()


def random_change(life: SubscriptionLife, rng: random.Random, world: StripeWorld) -> dict:
    kind = rng.choice(["status", "status", "price", "cancel_at_period_end", "cancel_at", "period"])
    if kind == "status":
        choices = [s for s in NON_TERMINAL if s != life.obj["status"]]
        return life.change(status=rng.choice(choices), latest_invoice=world.id("in"))
    if kind == "price":
        current = life.obj["items"]["data"][0]["price"]["id"]
        return life.change(price=rng.choice([p for p in ("price_basic", "price_pro", "price_family") if p != current]))
    if kind == "cancel_at_period_end":
        return life.change(cancel_at_period_end=not life.obj["cancel_at_period_end"])
    if kind == "cancel_at":
        _, end = SubscriptionLife.period_of(life.obj)
        return life.change(cancel_at=None if life.obj["cancel_at"] else end)
    return life.change(new_period=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_delivery_order_of_a_seconds_changes_ends_on_stripes_final_state(version):
    """Hundreds of random seconds of 2-4 changes (status cycles included), each delivered in every order
    after the subscription's earlier history: the fold ends on Stripe's final object every time."""
    rng = random.Random(f"same-second-{version}")
    failures = []
    for case in range(150):
        world = StripeWorld(version, seed=f"{version}-{case}")
        life = SubscriptionLife(world, customer=world.id("cus"))
        history = [life.created_event()]
        world.tick(86400)
        history.append(life.change(status=rng.choice(["active", "trialing"])))
        world.tick(86400)
        second = [random_change(life, rng, world) for _ in range(rng.randint(2, 4))]
        want = expected_of(life)
        before = [state_of(e) for e in history]
        for order in itertools.permutations(second):
            got = row_of(fold(before + [state_of(e) for e in order]))
            if got != want:
                failures.append((case, [e["data"].get("previous_attributes") for e in order], got, want))
    assert not failures, f"{len(failures)} orders end wrong, first: {failures[0]}"


def test_a_later_second_still_replaces_whatever_the_earlier_one_merged():
    world = StripeWorld(V, seed="later-second")
    life = SubscriptionLife(world, customer=world.id("cus"))
    first = life.created_event()
    world.tick(10)
    a, b = life.change(status="past_due"), life.change(cancel_at_period_end=True)
    world.tick(10)
    c = life.change(status="active")
    for order in itertools.permutations([a, b, c]):
        assert row_of(fold([state_of(first)] + [state_of(e) for e in order])) == expected_of(life)


def test_terminal_wins_within_the_second_and_is_never_left():
    world = StripeWorld(V, seed="terminal-second")
    life = SubscriptionLife(world, customer=world.id("cus"))
    first = life.created_event()
    world.tick(10)
    steps = [life.change(status="past_due"), life.change(cancel_at_period_end=True),
             life.change("customer.subscription.deleted", status="canceled", ended_at=world.now)]
    world.tick(5)
    late = life.change(status="active")  # nothing Stripe sends, but a canceled id must not revive
    life.obj["status"] = "canceled"
    for order in itertools.permutations(steps + [late]):
        final = fold([state_of(first)] + [state_of(e) for e in order])
        assert final.status == "canceled"


def test_a_repeated_event_of_the_second_changes_nothing():
    world = StripeWorld(V, seed="repeat")
    life = SubscriptionLife(world, customer=world.id("cus"))
    first = state_of(life.created_event())
    world.tick(10)
    e1, e2 = life.change(status="past_due"), life.change(status="active", latest_invoice=world.id("in"))
    stored = fold([first, state_of(e1), state_of(e2)])
    assert so.advance(stored, state_of(e1)) is None
    assert so.advance(stored, state_of(e2)) is None


@pytest.mark.parametrize("ids", ["ascending", "descending"])
@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
async def test_past_due_recovered_and_scheduled_cancellation_in_one_second_over_http(client, ids, order):
    """The review's case: payment fails and recovers in the second the customer schedules cancellation.
    Delivered E1 (active -> past_due), E3 (cancel_at_period_end -> true), E2 (past_due -> active), the old
    rule lost the cancellation; every order must show ACTIVE with cancelAtPeriodEnd true."""
    world = StripeWorld(V, seed=f"three-{ids}-{order}")
    user_id, sub = await linked(client, world)
    world.tick(30 * 86400)
    steps = [sub.change(status="past_due", latest_invoice=world.id("in")),
             sub.change(status="active", latest_invoice=world.id("in")),
             sub.change(cancel_at_period_end=True, canceled_at=world.now)]
    names = sorted(world.id("evt") for _ in steps)
    for evt, name in zip(steps, names if ids == "ascending" else names[::-1]):
        evt["id"] = name
    for i in order:
        assert (await deliver_ok(client, steps[i]))["outcome"] in ("applied", "ignored")
    row = await shown_subscription(client, user_id)
    assert row["status"] == "ACTIVE" and row["cancelAtPeriodEnd"] is True
    assert {k: row[k] for k in sub.expected_row()} == sub.expected_row()
