"""Reading Stripe events and objects, and the rules that order subscription states (pure functions).

docs/API.md ("Stripe → subscription") is the contract these implement:
* a Subscription object becomes a `State`: Stripe's status and the fields the subscriptions row shows;
* `advance(stored, candidate)` gives the state after an event — terminal first, then the event's
  `created` second, and within one second a merge of that second's events field by field (see
  `merge_second`), so every delivery order of a second ends on the same state;
* `preference(state)` decides which of a customer's subscriptions is the user's.
Anything we cannot read raises `Rejected(reason)`: the event is stored as `rejected`, never answered
with an error (Stripe would retry it forever).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

STATUS_ENUM = {
    "trialing": "TRIALING", "active": "ACTIVE", "past_due": "PAST_DUE", "unpaid": "PAST_DUE",
    "canceled": "CANCELLED", "incomplete": "INACTIVE", "incomplete_expired": "INACTIVE", "paused": "INACTIVE",
}
TERMINAL = frozenset({"canceled", "incomplete_expired"})
# A subscription in one of these is the customer's live subscription (it may take over the user's row).
LIVE = frozenset({"trialing", "active", "past_due", "unpaid", "paused"})
# Within one second, for a field no previous_attributes chain decides: the later step of Stripe's
# lifecycle wins (a subscription moves from incomplete to trialing/active, then to past_due, unpaid or
# paused, and ends canceled).
LIFECYCLE_RANK = {"incomplete": 0, "trialing": 1, "active": 2, "past_due": 3, "unpaid": 4, "paused": 5,
                  "incomplete_expired": 6, "canceled": 7}
SUBSCRIPTION_PREFIX = "customer.subscription."
INVOICE_PREFIX = "invoice."
CHECKOUT = "checkout.session.completed"
CREATED = "customer.subscription.created"
# Events of one subscription kept for the merge of their second (Stripe sends a handful per second; the
# bound only keeps a pathological burst from growing the stored state).
MAX_SECOND_EVENTS = 50
# The fields a state is compared on, as Stripe spells them (raw values: ids, seconds, booleans).
COMPARED = ("status", "price", "current_period_end", "cancel_at_period_end", "cancel_at")
MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z: the last second a timestamp column and Python hold
NUL_MARK = "\ufffd"


class StripeEvent(msgspec.Struct):
    """A Stripe event as Stripe sends it (more fields are allowed); `data.object` is the subscription,
    invoice or checkout session it is about. For the OpenAPI document: the webhook reads the raw bytes."""

    id: str
    type: str
    created: int
    data: dict


class Rejected(Exception):
    """The event is signed but cannot be applied; the reason is stored with it."""


@dataclass
class Event:
    id: str
    type: str
    created: int
    obj: dict
    previous: dict | None
    payload: bytes  # as stored (NUL characters replaced)
    had_nul: bool = False


@dataclass
class State:
    subscription_id: str
    customer_id: str | None
    status: str | None  # None: only a checkout has named this subscription so far
    created: int  # the `created` second of the event (or API read) that gave this state
    event_id: str
    event_type: str
    after: dict = field(default_factory=dict)  # COMPARED fields now
    before: dict = field(default_factory=dict)  # COMPARED fields before this event (previous_attributes)
    subscription_created: int = 0
    source: str = "event"
    base: dict = field(default_factory=dict)  # COMPARED fields at the end of the previous second
    # This second's events as merge_second reads them: [{"id", "type", "after", "before"}, ...]
    second: list = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def row_values(self) -> tuple:
        """(price, status enum, period end, cancelAtPeriodEnd, cancelAt) for the subscriptions row."""
        a = self.after
        cancel_at = a.get("cancel_at")
        return (a.get("price"), STATUS_ENUM.get(self.status or "", "INACTIVE"), timestamp(a.get("current_period_end")),
                bool(a.get("cancel_at_period_end")) or cancel_at is not None, timestamp(cancel_at))


def timestamp(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def _strip_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", NUL_MARK)
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    return value


def decode_event(payload: bytes) -> tuple[dict, bytes, bool]:
    """(event dict, payload to store, had NUL characters). Raises Rejected for a body that is not a
    JSON object. PostgreSQL text and jsonb cannot hold NUL, so NULs become U+FFFD in what is stored."""
    try:
        raw = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise Rejected(f"not JSON: {exc}") from None
    except RecursionError:  # nested deeper than the decoder goes: no Stripe object is
        raise Rejected("nested too deep to be a Stripe event") from None
    if not isinstance(raw, dict):
        raise Rejected("not a JSON object")
    had_nul = b"\\u0000" in payload
    if had_nul:
        try:
            raw = _strip_nul(raw)
        except RecursionError:
            raise Rejected("nested too deep to be a Stripe event") from None
        payload = msgspec.json.encode(raw)
    return raw, payload, had_nul


def _int(value, name: str, *, maximum: int = MAX_SECONDS, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(f"{name} is not an integer")
    if not 0 <= value <= maximum:
        raise Rejected(f"{name} is out of range ({value})")
    return value


def identifier(value, name: str, *, optional: bool = True, had_nul: bool = False) -> str | None:
    """An id, or the id of an expanded object; None when absent."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is None or value == "":
        if optional:
            return None
        raise Rejected(f"{name} is missing")
    if not isinstance(value, str):
        raise Rejected(f"{name} is not a string")
    if had_nul and NUL_MARK in value:
        raise Rejected(f"{name} contains a NUL character")
    if len(value) > 255:
        raise Rejected(f"{name} is too long")
    return value


def parse_event(raw: dict, payload: bytes, had_nul: bool) -> Event:
    event_id = identifier(raw.get("id"), "id", optional=False, had_nul=had_nul)
    event_type = identifier(raw.get("type"), "type", optional=False, had_nul=had_nul)
    created = _int(raw.get("created"), "created")
    data = raw.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise Rejected("data.object is not an object")
    previous = data.get("previous_attributes")
    return Event(event_id, event_type, created, data["object"], previous if isinstance(previous, dict) else None,
                 payload, had_nul)


def fallback_id(payload: bytes) -> str:
    """The id a signed body that names none is stored under (the same body gets the same id)."""
    import hashlib

    return "unreadable_" + hashlib.sha256(payload).hexdigest()[:32]


# ---- subscriptions ----------------------------------------------------------------------------------------


def _first_item(obj: dict) -> dict:
    items = obj.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    if data is None:
        return {}
    if not isinstance(data, list) or (data and not isinstance(data[0], dict)):
        raise Rejected("items.data is not a list of subscription items")
    return data[0] if data else {}


def compared_fields(obj: dict, *, partial: bool, had_nul: bool = False) -> dict:
    """The COMPARED fields of a Subscription object (basil+ keeps the period on the items), or of its
    previous_attributes (`partial`: only the fields present)."""
    out: dict = {}
    if "status" in obj or not partial:
        status = obj.get("status")
        if status not in STATUS_ENUM:
            raise Rejected(f"unknown subscription status {str(status)[:40]!r}")
        out["status"] = status
    has_items = isinstance(obj.get("items"), dict)
    item = _first_item(obj) if has_items or not partial else {}
    if has_items or not partial:
        out["price"] = identifier(item.get("price"), "items.data[0].price", had_nul=had_nul)
    if "current_period_end" in obj:
        out["current_period_end"] = _int(obj["current_period_end"], "current_period_end", optional=True)
    elif "current_period_end" in item:
        out["current_period_end"] = _int(item["current_period_end"], "items.data[0].current_period_end",
                                         optional=True)
    elif not partial:
        out["current_period_end"] = None
    if "cancel_at_period_end" in obj or not partial:
        value = obj.get("cancel_at_period_end", False)
        if not isinstance(value, bool):
            raise Rejected("cancel_at_period_end is not a boolean")
        out["cancel_at_period_end"] = value
    if "cancel_at" in obj or not partial:
        out["cancel_at"] = _int(obj.get("cancel_at"), "cancel_at", optional=True)
    return out


def subscription_state(obj: dict, *, created: int, event_id: str, event_type: str, previous: dict | None = None,
                       had_nul: bool = False, source: str = "event") -> State:
    """The State a Subscription object gives. customer.subscription.deleted always means canceled."""
    if obj.get("object") not in (None, "subscription"):
        raise Rejected(f"data.object is a {str(obj.get('object'))[:40]}, not a subscription")
    sub_id = identifier(obj.get("id"), "subscription id", optional=False, had_nul=had_nul)
    customer = identifier(obj.get("customer"), "customer", had_nul=had_nul)
    after = compared_fields(obj, partial=False, had_nul=had_nul)
    if event_type == "customer.subscription.deleted":
        after["status"] = "canceled"
    try:  # previous_attributes only order same-second events: unreadable ones are just not used
        before = compared_fields(previous, partial=True, had_nul=had_nul) if previous else {}
    except Rejected:
        before = {}
    return State(sub_id, customer, after["status"], created, event_id, event_type, after, before,
                 _int(obj.get("created", 0), "created", optional=True) or 0, source)


def _entry(state: State) -> dict:
    return {"id": state.event_id, "type": state.event_type, "after": state.after, "before": state.before}


def _rank(entry: dict) -> tuple:
    """A fixed order of one second's events, used only where previous_attributes say nothing:
    `created` first (Stripe creates a subscription before it changes it), then the lifecycle step,
    then the event id (any fixed choice, so every delivery order agrees)."""
    return (entry["type"] != CREATED, LIFECYCLE_RANK.get(entry["after"].get("status"), -1), entry["id"])


def merge_second(base: dict, events: list[dict]) -> dict:
    """The COMPARED fields at the end of one second, from its events in any order.

    Each event's previous_attributes name the fields it changed, old value -> new value: per field these
    changes form one path through the values, walked in Stripe's (unknown) order. A path's end is the
    value it enters once more than it leaves (active -> past_due, past_due -> active ends on active
    whichever arrived first); a closed path (every value left as often as entered) ends where it began,
    the value the previous second ended with (`base`). A field no event of the second changed reads the
    same in every event's object; where objects still disagree (an event without previous_attributes,
    or events still missing) the `_rank`-last object decides. Fields are merged independently, so a
    cancellation scheduled in the second a payment failed and recovered is kept."""
    ranked = sorted(events, key=_rank)
    start = base or next((e["after"] for e in ranked if e["type"] == CREATED), {})
    merged: dict = {}
    for name in {k for e in events for k in e["after"]}:
        net: Counter = Counter()
        for e in events:
            before, after = e["before"], e["after"]
            if name in before and before[name] != after.get(name):
                net[after.get(name)] += 1
                net[before[name]] -= 1
        ends = [value for value, n in net.items() if n > 0]
        if len(ends) == 1:
            merged[name] = ends[0]
        elif net and not ends and name in start and start[name] in net:
            merged[name] = start[name]
        else:
            deciding = [e for e in ranked if not ends or e["after"].get(name) in ends] or ranked
            merged[name] = deciding[-1]["after"].get(name)
    return merged


def _begin_second(candidate: State, base: dict) -> State:
    candidate.base = base
    candidate.second = [_entry(candidate)]
    return candidate


def advance(stored: State | None, candidate: State) -> State | None:
    """The subscription's state after `candidate`, or None when the event changes nothing (older,
    already merged, or a non-terminal state after a terminal one).

    Terminal states are never left and win over any non-terminal state; otherwise a later second starts
    afresh from its event's object, and an event of the stored state's second is merged with the other
    events of that second (`merge_second`). A state read from Stripe's API is the truth of its moment."""
    if stored is None or stored.status is None:
        return _begin_second(candidate, {})
    if stored.terminal and not candidate.terminal:
        return None
    if candidate.source == "api":
        if candidate.after == stored.after and candidate.status == stored.status:
            return None
        return _begin_second(candidate, dict(stored.after))
    if candidate.terminal != stored.terminal:  # the candidate ends the subscription
        return _begin_second(candidate, dict(stored.after) if candidate.created > stored.created else stored.base)
    if candidate.created < stored.created:
        return None
    if candidate.created > stored.created:
        return _begin_second(candidate, dict(stored.after))
    events = stored.second or [_entry(stored)]
    if any(e["id"] == candidate.event_id for e in events):
        return None
    events = (events + [_entry(candidate)])[-MAX_SECOND_EVENTS:]
    merged = merge_second(stored.base, events)
    if candidate.terminal and merged.get("status") not in TERMINAL:  # terminal wins, whatever the paths say
        ending = max((e for e in events if e["after"].get("status") in TERMINAL), key=_rank)
        merged["status"] = ending["after"]["status"]
    return State(candidate.subscription_id, candidate.customer_id or stored.customer_id, merged.get("status"),
                 candidate.created, candidate.event_id, candidate.event_type, merged, candidate.before,
                 candidate.subscription_created or stored.subscription_created, candidate.source, stored.base, events)


def preference(state: State | None) -> tuple:
    """Which of a customer's subscriptions is the user's: a live one before any other, then the newest."""
    if state is None:
        return (False, 0, "")
    return (state.status is None or state.status in LIVE, state.subscription_created, state.subscription_id)


def state_from_row(row) -> State | None:
    if row is None or row["stripeSubscriptionId"] is None:  # (a LEFT JOIN's NULLs: no state)
        return None
    previous = row["previous"] or {}
    return State(row["stripeSubscriptionId"], row["stripeCustomerId"], row["status"], row["lastEventCreated"],
                 row["lastEventId"], row["eventType"] or "", previous.get("after") or {}, previous.get("before") or {},
                 row["subscriptionCreated"] or 0, row["source"] or "event", previous.get("base") or {},
                 previous.get("second") or [])


def same_state(stored: State | None, candidate: State) -> bool:
    return stored is not None and stored.status == candidate.status and stored.after == candidate.after


# ---- invoices and checkouts -------------------------------------------------------------------------------


def invoice_subscription(obj: dict, had_nul: bool = False) -> str | None:
    """The subscription an invoice bills: invoice.subscription (to 2024-x), parent.subscription_details
    .subscription (basil and later)."""
    if "subscription" in obj:
        return identifier(obj.get("subscription"), "subscription", had_nul=had_nul)
    parent = obj.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, dict) else None
    return identifier(details.get("subscription"), "parent.subscription_details.subscription",
                      had_nul=had_nul) if isinstance(details, dict) else None


def checkout_user(obj: dict, had_nul: bool = False) -> str | None:
    """The user a checkout names: client_reference_id, else metadata.userId."""
    ref = identifier(obj.get("client_reference_id"), "client_reference_id", had_nul=had_nul)
    if ref is not None:
        return ref
    metadata = obj.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise Rejected("metadata is not an object")
    return identifier(metadata.get("userId"), "metadata.userId", had_nul=had_nul)
