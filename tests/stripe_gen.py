"""A Stripe event generator: full Subscription, Invoice and Checkout Session objects as Stripe sends them.

The top-level fields of each object are those Stripe's OpenAPI fixtures list for the API version
(tests/fixtures/stripe_fields.json says where they come from); the fields that matter for billing get
lifelike values, every other field its empty value (null), as most of them are for a plain card
subscription. Version differences that matter here:
* 2024-06-20: current_period_start/end on the subscription; invoice.subscription.
* 2025-03-31.basil: the periods moved onto each subscription item; invoice.subscription moved to
  invoice.parent.subscription_details.subscription.
* 2025-09-30.clover: subscriptions carry billing_mode, flexible by default for new subscriptions; the
  Customer Portal schedules a cancellation by setting cancel_at (cancel_at_period_end stays false).
* 2026-10-28.endive: the newest field list known (see the fixtures file).

`SubscriptionLife` keeps one subscription's current object and emits the events Stripe sends when it
changes, `*.updated` events with `data.previous_attributes` (the changed top-level fields' old values),
so a flow is a list of events in Stripe's order plus, after each, the row a correct service shows.
"""

from __future__ import annotations

import copy
import json
import random
import string
from datetime import UTC, datetime
from pathlib import Path

FIELDS = json.loads((Path(__file__).parent / "fixtures" / "stripe_fields.json").read_text())["versions"]
VERSIONS = list(FIELDS)
BASIL = "2025-03-31.basil"
MONTH = 30 * 86400
TERMINAL = ("canceled", "incomplete_expired")
STATUS_ENUM = {
    "trialing": "TRIALING", "active": "ACTIVE", "past_due": "PAST_DUE", "unpaid": "PAST_DUE",
    "canceled": "CANCELLED", "incomplete": "INACTIVE", "incomplete_expired": "INACTIVE", "paused": "INACTIVE",
}


def periods_on_items(version: str) -> bool:
    return version >= BASIL  # version names sort by their dates


def flexible_by_default(version: str) -> bool:
    return version >= "2025-09-30.clover"


def random_id(prefix: str, rng: random.Random, length: int = 24) -> str:
    return prefix + "_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _blank(version: str, kind: str) -> dict:
    return {name: None for name in FIELDS[version][kind]}


def price_object(price_id: str, created: int) -> dict:
    return {"id": price_id, "object": "price", "active": True, "billing_scheme": "per_unit", "created": created,
            "currency": "usd", "livemode": False, "lookup_key": None, "metadata": {}, "nickname": None,
            "product": "prod_" + price_id.removeprefix("price_"), "recurring": {
                "interval": "month", "interval_count": 1, "meter": None, "usage_type": "licensed",
                "trial_period_days": None},
            "tax_behavior": "unspecified", "tiers_mode": None, "transform_quantity": None, "type": "recurring",
            "unit_amount": 2000, "unit_amount_decimal": "2000"}


class StripeWorld:
    """Ids, clock and API version of one generated account."""

    def __init__(self, version: str, t0: int = 1_760_000_000, seed: str | int = 0):
        self.version = version
        self.now = t0
        self.rng = random.Random(f"{version}-{seed}")

    def id(self, prefix: str) -> str:
        return random_id(prefix, self.rng)

    def tick(self, seconds: int = 1) -> int:
        self.now += seconds
        return self.now

    def event(self, event_type: str, obj: dict, previous: dict | None = None) -> dict:
        data = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        return {"id": self.id("evt"), "object": "event", "api_version": self.version, "created": self.now,
                "data": data, "livemode": False, "pending_webhooks": 1,
                "request": {"id": self.id("req"), "idempotency_key": None}, "type": event_type}

    # ---- objects ----------------------------------------------------------------------------------------

    def checkout_session(self, *, customer: str | None, subscription: str | None, user_id=None,
                         via: str = "client_reference_id", mode: str = "subscription") -> dict:
        obj = _blank(self.version, "checkout.session")
        obj.update({
            "id": self.id("cs_test"), "object": "checkout.session", "mode": mode, "status": "complete",
            "payment_status": "paid" if mode != "setup" else "no_payment_required", "created": self.now - 60,
            "expires_at": self.now + 86400, "livemode": False, "customer": customer, "subscription": subscription,
            "client_reference_id": user_id if via == "client_reference_id" else None,
            "metadata": {"userId": user_id} if via == "metadata" else {}, "currency": "usd",
            "amount_subtotal": 2000 if mode != "setup" else None, "amount_total": 2000 if mode != "setup" else None,
            "success_url": "https://app.example.com/billing/success", "cancel_url": "https://app.example.com/billing",
            "customer_details": {"email": "buyer@example.com", "name": "Buyer", "address": None, "phone": None,
                                 "tax_exempt": "none", "tax_ids": []},
            "customer_creation": "always", "locale": None, "payment_method_types": ["card"],
            "ui_mode": "hosted", "url": None, "custom_fields": [], "custom_text": {
                "after_submit": None, "shipping_address": None, "submit": None, "terms_of_service_acceptance": None},
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "payment_method_collection": "always", "billing_address_collection": None,
            "phone_number_collection": {"enabled": False}, "shipping_options": [],
        })
        if "discounts" in obj:
            obj["discounts"] = []
        if mode == "payment":
            obj["payment_intent"] = self.id("pi")
        if mode == "setup":
            obj["setup_intent"] = self.id("seti")
        return obj

    def invoice(self, sub: dict, *, status: str, amount: int = 2000, reason: str = "subscription_cycle",
                attempt_count: int = 1) -> dict:
        obj = _blank(self.version, "invoice")
        invoice_id = self.id("in")
        start, end = SubscriptionLife.period_of(sub)
        paid = status == "paid"
        obj.update({
            "id": invoice_id, "object": "invoice", "customer": sub["customer"], "status": status,
            "amount_due": amount, "amount_paid": amount if paid else 0, "amount_remaining": 0 if paid else amount,
            "amount_shipping": 0, "attempt_count": attempt_count, "attempted": True, "auto_advance": not paid,
            "billing_reason": reason, "collection_method": "charge_automatically", "created": self.now,
            "currency": "usd", "livemode": False, "metadata": {}, "period_start": start, "period_end": end,
            "subtotal": amount, "subtotal_excluding_tax": amount, "total": amount, "total_excluding_tax": amount,
            "starting_balance": 0, "ending_balance": 0, "discounts": [], "default_tax_rates": [],
            "account_country": "US", "customer_tax_exempt": "none", "customer_tax_ids": [],
            "customer_email": "buyer@example.com", "number": self.id("NR", ).upper()[:12],
            "status_transitions": {"finalized_at": self.now, "marked_uncollectible_at": None,
                                   "paid_at": self.now if paid else None, "voided_at": None},
            "lines": {"object": "list", "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines", "data": [
                {"id": self.id("il"), "object": "line_item", "amount": amount, "currency": "usd",
                 "period": {"start": start, "end": end}, "quantity": 1}]},
            "webhooks_delivered_at": self.now, "effective_at": self.now,
        })
        if periods_on_items(self.version):
            obj["parent"] = {"type": "subscription_details", "quote_details": None,
                             "subscription_details": {"metadata": {}, "subscription": sub["id"]}}
        else:
            obj["subscription"] = sub["id"]
            obj["paid"] = paid
            obj["paid_out_of_band"] = False
            obj["subscription_details"] = {"metadata": {}}
        return obj


class SubscriptionLife:
    """One subscription's object as Stripe holds it, and the events each change of it sends."""

    def __init__(self, world: StripeWorld, *, customer: str, price: str = "price_basic", status: str = "active",
                 trial_days: int = 0, flexible: bool | None = None):
        self.world = world
        v = world.version
        now = world.now
        obj = _blank(v, "subscription")
        sub_id = world.id("sub")
        item = _blank(v, "subscription_item")
        item.update({"id": world.id("si"), "object": "subscription_item", "created": now, "discounts": [],
                     "metadata": {}, "price": price_object(price, now - 86400), "quantity": 1,
                     "subscription": sub_id, "tax_rates": []})
        item["plan"] = {"id": price, "object": "plan", "active": True, "amount": 2000, "currency": "usd",
                        "interval": "month", "interval_count": 1, "product": "prod_" + price.removeprefix("price_")}
        obj.update({
            "id": sub_id, "object": "subscription", "customer": customer, "status": status, "created": now,
            "start_date": now, "billing_cycle_anchor": now, "cancel_at_period_end": False, "cancel_at": None,
            "canceled_at": None, "ended_at": None, "collection_method": "charge_automatically", "currency": "usd",
            "livemode": False, "metadata": {}, "default_tax_rates": [], "discounts": [],
            "automatic_tax": {"enabled": False, "liability": None},
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                                 "save_default_payment_method": "off"},
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "items": {"object": "list", "data": [item], "has_more": False, "total_count": 1,
                      "url": f"/v1/subscription_items?subscription={sub_id}"},
        })
        if "billing_mode" in obj:
            flex = flexible_by_default(v) if flexible is None else flexible
            obj["billing_mode"] = {"type": "flexible" if flex else "classic", "flexible": None,
                                   "updated_at": None}
        end = now + (trial_days * 86400 if trial_days else MONTH)
        if trial_days:
            obj.update({"trial_start": now, "trial_end": end})
        self.obj = obj
        self._set_period(now, end)

    @property
    def id(self) -> str:
        return self.obj["id"]

    @staticmethod
    def period_of(obj: dict) -> tuple[int, int]:
        if "current_period_end" in obj:
            return obj["current_period_start"], obj["current_period_end"]
        item = obj["items"]["data"][0]
        return item["current_period_start"], item["current_period_end"]

    def _set_period(self, start: int, end: int) -> None:
        if periods_on_items(self.world.version):
            for item in self.obj["items"]["data"]:
                item["current_period_start"], item["current_period_end"] = start, end
        else:
            self.obj["current_period_start"], self.obj["current_period_end"] = start, end

    def created_event(self) -> dict:
        return self.world.event("customer.subscription.created", self.obj)

    def change(self, event_type: str = "customer.subscription.updated", *, status: str | None = None,
               price: str | None = None, new_period: bool = False, **fields) -> dict:
        """Apply a change to the object and return its event (previous_attributes on *.updated)."""
        before = copy.deepcopy(self.obj)
        now = self.world.now
        if status is not None:
            self.obj["status"] = status
        if price is not None:
            item = self.obj["items"]["data"][0]
            item["price"] = price_object(price, now - 86400)
            item["plan"] = dict(item["plan"], id=price, product="prod_" + price.removeprefix("price_"))
        if new_period:
            _, end = self.period_of(self.obj)
            self._set_period(end, end + MONTH)
        self.obj.update(fields)
        if event_type == "customer.subscription.updated":
            previous = {k: before[k] for k in self.obj if before.get(k) != self.obj[k]}
            return self.world.event(event_type, self.obj, previous)
        return self.world.event(event_type, self.obj)

    def expected_row(self) -> dict:
        """What the service shows for this object (docs/API.md, "Stripe → subscription")."""
        _, end = self.period_of(self.obj)
        return {"stripeSubscriptionId": self.id, "status": STATUS_ENUM[self.obj["status"]],
                "stripePriceId": self.obj["items"]["data"][0]["price"]["id"], "currentPeriodEnd": iso(end),
                "cancelAtPeriodEnd": bool(self.obj["cancel_at_period_end"] or self.obj["cancel_at"] is not None)}


# ---- delivery orders ------------------------------------------------------------------------------------


def duplicated(events: list[dict], rng: random.Random) -> list[dict]:
    """Each event delivered two or three times, retries landing a little later."""
    out: list[dict] = []
    for evt in events:
        out.append(evt)
        for _ in range(rng.choice((1, 2))):
            out.insert(min(len(out), len(out) - 1 + rng.randint(0, 3)), evt)
    return out


def shuffled(events: list[dict], rng: random.Random) -> list[dict]:
    out = list(events)
    rng.shuffle(out)
    return out


def in_one_second(events: list[dict], ids_sort: str, rng: random.Random) -> list[dict]:
    """Same events, each run of same-`created` events re-id'd so their ids sort in Stripe's order
    ("asc") or against it ("desc"); delivered in (created, id) order, the trap for a sort by id."""
    out = copy.deepcopy(events)
    by_second: dict[int, list[dict]] = {}
    for evt in out:
        by_second.setdefault(evt["created"], []).append(evt)
    for group in by_second.values():
        ids = sorted(random_id("evt", rng) for _ in group)
        if ids_sort == "desc":
            ids.reverse()
        for evt, new_id in zip(group, ids):
            evt["id"] = new_id
    return sorted(out, key=lambda e: (e["created"], e["id"]))


# ---- flows ------------------------------------------------------------------------------------------------


class Flow:
    """Events in Stripe's order and, after each, the subscription row the user has (None: no row yet)."""

    def __init__(self, world: StripeWorld, user_id: str, customer: str):
        self.world, self.user_id, self.customer = world, user_id, customer
        self.steps: list[tuple[dict, dict | None]] = []
        self.life: SubscriptionLife | None = None
        self._linked = False
        self._seen_subscription = False

    def _shown(self) -> dict | None:
        if not self._linked:
            return None
        if not self._seen_subscription:
            return {"stripeSubscriptionId": self.life.id, "status": "INACTIVE", "stripePriceId": None,
                    "currentPeriodEnd": None, "cancelAtPeriodEnd": False}
        return self.life.expected_row()

    def start(self, **kwargs) -> SubscriptionLife:
        self.life = SubscriptionLife(self.world, customer=self.customer, **kwargs)
        self._seen_subscription = True
        self.steps.append((self.life.created_event(), None))
        self.steps[-1] = (self.steps[-1][0], self._shown())
        return self.life

    def change(self, event_type: str = "customer.subscription.updated", **kwargs) -> None:
        evt = self.life.change(event_type, **kwargs)
        self.steps.append((evt, self._shown()))

    def invoice(self, event_type: str, **kwargs) -> None:
        status = "paid" if event_type == "invoice.paid" else "open"
        evt = self.world.event(event_type, self.world.invoice(self.life.obj, status=status, **kwargs))
        self.steps.append((evt, self._shown()))

    def checkout(self, via: str = "client_reference_id") -> None:
        self._linked = True
        session = self.world.checkout_session(customer=self.customer, subscription=self.life.id,
                                              user_id=self.user_id, via=via)
        self.steps.append((self.world.event("checkout.session.completed", session), self._shown()))

    @property
    def events(self) -> list[dict]:
        return [evt for evt, _ in self.steps]

    @property
    def final(self) -> dict | None:
        return self.steps[-1][1]


def flow_signup(f: Flow) -> None:
    """Checkout: the subscription starts incomplete, its first invoice is paid, it turns active, and the
    session completes, all within about a second."""
    f.start(status="incomplete")
    f.invoice("invoice.paid", reason="subscription_create")
    f.change(status="active")
    f.world.tick()
    f.checkout()


def flow_trial(f: Flow) -> None:
    """A trial: the $0 invoice paid at the start keeps it TRIALING; at the trial's end it turns active."""
    f.start(status="trialing", trial_days=14)
    f.invoice("invoice.paid", amount=0, reason="subscription_create")
    f.world.tick()
    f.checkout(via="metadata")
    f.world.tick(14 * 86400)
    f.change(status="active", new_period=True)
    f.invoice("invoice.paid", reason="subscription_cycle")


def _active(f: Flow, **kwargs) -> None:
    f.start(status="active", **kwargs)
    f.invoice("invoice.paid", reason="subscription_create")
    f.world.tick()
    f.checkout()


def flow_renewals(f: Flow) -> None:
    _active(f)
    for _ in range(3):
        f.world.tick(MONTH)
        f.change(new_period=True, latest_invoice=f.world.id("in"))
        f.invoice("invoice.paid")


def _renewal_fails(f: Flow) -> None:
    """An active subscription renews, the payment fails, it turns past_due; three days pass."""
    _active(f)
    f.world.tick(MONTH)
    f.change(new_period=True)
    f.invoice("invoice.payment_failed")
    f.change(status="past_due")
    f.world.tick(3 * 86400)


def flow_past_due_recovered(f: Flow) -> None:
    _renewal_fails(f)
    f.invoice("invoice.paid", attempt_count=2)
    f.change(status="active")


def flow_past_due_canceled(f: Flow) -> None:
    """Retries fail, Stripe cancels; the final failed retry and a late payment of the old invoice
    change nothing."""
    _renewal_fails(f)
    f.invoice("invoice.payment_failed", attempt_count=2)
    f.world.tick(4 * 86400)
    f.change("customer.subscription.deleted", status="canceled", canceled_at=f.world.now, ended_at=f.world.now)
    f.invoice("invoice.payment_failed", attempt_count=3)
    f.world.tick(86400)
    f.invoice("invoice.paid", attempt_count=3)


def flow_cancel_at_period_end(f: Flow) -> None:
    _active(f)
    f.world.tick(86400)
    _, end = SubscriptionLife.period_of(f.life.obj)
    f.change(cancel_at_period_end=True, cancel_at=end, canceled_at=f.world.now)
    f.world.now = end
    f.change("customer.subscription.deleted", status="canceled", ended_at=end)


def flow_scheduled_cancel(f: Flow) -> None:
    """The Customer Portal with flexible billing: cancel_at set, cancel_at_period_end left false;
    withdrawn, scheduled again, and the subscription ends at cancel_at."""
    _active(f, flexible=True)
    _, end = SubscriptionLife.period_of(f.life.obj)
    f.world.tick(86400)
    f.change(cancel_at=end, canceled_at=f.world.now)
    f.world.tick(86400)
    f.change(cancel_at=None, canceled_at=None)
    f.world.tick(86400)
    f.change(cancel_at=end, canceled_at=f.world.now)
    f.world.now = end
    f.change("customer.subscription.deleted", status="canceled", ended_at=end)


def flow_plan_change(f: Flow) -> None:
    _active(f)
    f.world.tick(86400)
    f.change(price="price_pro")
    f.invoice("invoice.paid", reason="subscription_update")
    f.world.tick(86400)
    f.change(price="price_family")


def flow_pause_resume(f: Flow) -> None:
    """A trial ending without a payment method pauses (trial_settings: pause); paying resumes it."""
    f.start(status="trialing", trial_days=7)
    f.life.obj["trial_settings"] = {"end_behavior": {"missing_payment_method": "pause"}}
    f.invoice("invoice.paid", amount=0, reason="subscription_create")
    f.world.tick()
    f.checkout()
    f.world.tick(7 * 86400)
    f.change(status="paused")
    f.change("customer.subscription.paused")
    f.world.tick(2 * 86400)
    f.change(status="active", new_period=True)
    f.change("customer.subscription.resumed")
    f.invoice("invoice.paid")


def flow_incomplete_expired(f: Flow) -> None:
    """The first payment never succeeds: incomplete, then incomplete_expired after 23 hours."""
    f.start(status="incomplete")
    f.invoice("invoice.payment_failed", reason="subscription_create")
    f.world.tick()
    f.checkout()
    f.world.tick(23 * 3600)
    f.change(status="incomplete_expired", ended_at=f.world.now)
    f.world.tick(3600)
    f.invoice("invoice.paid", reason="subscription_create")


FLOWS = {name.removeprefix("flow_"): fn for name, fn in dict(globals()).items() if name.startswith("flow_")}


def build_flow(name: str, version: str, user_id: str, seed: str | int = 0, t0: int = 1_760_000_000) -> Flow:
    world = StripeWorld(version, t0=t0, seed=f"{name}-{seed}")
    flow = Flow(world, user_id, world.id("cus"))
    FLOWS[name](flow)
    return flow
