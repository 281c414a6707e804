"""Stripe events -> subscriptions: each event updates a stored current state, in O(1), at any history size.

* Every signed event is stored once (by its id) with its outcome: applied, pending (its customer or
  user is not linked yet), duplicate (answered, not stored again), ignored, conflict or rejected (+ reason).
* Status comes only from Subscription objects (customer.subscription.* events, or Stripe's API when
  STRIPE_API_KEY is set). Invoice events never set it; with an API key they trigger a refresh.
* Per Stripe subscription, stripe_subscription_state holds the state the newest event gave;
  stripe_objects.advance gives the state after each event (terminal wins, a later second starts from its
  event's object, events of one second are merged field by field), so no history is ever re-read.
* The user's row shows the customer's preferred subscription (stripe_objects.preference); a row is
  written only when a value changes, so no-op events leave updatedAt and the cache alone.
Events of one customer are applied one at a time (an advisory lock), each in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import msgspec

from ..db import affected_rows
from ..deps import Deps
from ..ids import new_id
from ..queries import Q
from ..stripe_api import StripeUnavailable
from . import keys
from .stripe_objects import (
    CHECKOUT,
    INVOICE_PREFIX,
    SUBSCRIPTION_PREFIX,
    Event,
    Rejected,
    State,
    advance,
    checkout_user,
    decode_event,
    fallback_id,
    identifier,
    invoice_subscription,
    parse_event,
    preference,
    same_state,
    state_from_row,
    subscription_state,
)
from .unknown_outcome import invalidate_after_failed_write

log = logging.getLogger("service.stripe")

# A subscription id -> its current Subscription object from Stripe's API (STRIPE_API_KEY set), or None.
Fetch = Callable[[str], Awaitable[dict]]


@dataclass
class Outcome:
    outcome: str
    reason: str | None = None
    user_id: str | None = None  # whose cached subscription to drop
    event_type: str = ""  # for the trace span
    # Writes left for apply_event to send with the event's own row in one statement (`_record`): the
    # stored state's new values and the row's (see _state_put_args, _row_write_args).
    state_put: tuple | None = None
    row_write: tuple | None = None

    def answer(self) -> dict:
        body = {"received": True, "outcome": self.outcome}
        if self.reason:
            body["reason"] = self.reason
        return body


async def receive(deps: Deps, payload: bytes, fetch: Fetch | None = None) -> Outcome:
    """Store and apply one signed event body; never raises for anything inside it."""
    try:
        raw, stored_payload, had_nul = decode_event(payload)
    except Rejected as exc:
        return await _store_unreadable(deps, payload, str(exc))
    try:
        event = parse_event(raw, stored_payload, had_nul)
    except Rejected as exc:
        return await _store_unreadable(deps, stored_payload, str(exc), raw)
    result = await apply_event(deps, event, fetch)
    result.event_type = event.type
    return result


async def _store_unreadable(deps: Deps, payload: bytes, reason: str, raw: dict | None = None) -> Outcome:
    """A signed body that is not an event we can read: kept (as JSON) for ops, answered 2xx."""
    event_id = raw.get("id") if raw and isinstance(raw.get("id"), str) and raw["id"] and len(raw["id"]) < 256 \
        else fallback_id(payload)
    event_type = raw.get("type") if raw and isinstance(raw.get("type"), str) and len(raw["type"]) < 256 else ""
    stored = raw if raw is not None else {"unreadable": payload.decode("utf-8", "replace").replace("\x00", "\ufffd")}
    async with deps.db.transaction() as conn:
        await conn.execute(Q.stripe_lock_customer, event_id)
        if await conn.fetchval(Q.stripe_event_seen, event_id) is not None:
            return Outcome("duplicate")
        await _record(conn, (event_id, event_type.replace("\x00", ""), 0, None, None,
                             msgspec.json.decode(msgspec.json.encode(stored)), "rejected", reason))
    log.warning("stripe event %s rejected: %s", event_id, reason)
    return Outcome("rejected", reason)


def _references(event: Event) -> tuple[str | None, str | None]:
    """(subscription id, customer id) the event names, for storage and locking; None when unreadable."""
    obj = event.obj
    try:
        customer = identifier(obj.get("customer"), "customer", had_nul=event.had_nul)
        if event.type.startswith(SUBSCRIPTION_PREFIX):
            return identifier(obj.get("id"), "id", had_nul=event.had_nul), customer
        if event.type.startswith(INVOICE_PREFIX):
            return invoice_subscription(obj, event.had_nul), customer
        if event.type == CHECKOUT:
            return identifier(obj.get("subscription"), "subscription", had_nul=event.had_nul), customer
    except Rejected:
        pass
    return None, None


async def apply_event(deps: Deps, event: Event, fetch: Fetch | None = None, *, replay: bool = False) -> Outcome:
    """Apply one event in its own transaction. `replay`: the event is already stored (stripe-replay)."""
    sub_id, customer_id = _references(event)
    if fetch is not None and sub_id is not None and _reads_stripe(event.type):
        # Stripe's API is asked before the transaction: a slow or stalled API must hold neither a pooled
        # connection nor the customer's lock (a duplicate, known already, asks nothing).
        if replay or await deps.db.fetchval(Q.stripe_event_seen, event.id) is None:
            fetch = await _asked_already(fetch, sub_id)
    # Round trips of the common path (a subscription event, no API key): BEGIN, the customer's lock with
    # the lookup (duplicate? stored state, row), one write of event + state + row, COMMIT.
    own_object = fetch is None and sub_id is not None and event.type.startswith(SUBSCRIPTION_PREFIX)
    lock_key = customer_id or sub_id or event.id
    shown_to: list[str] = []  # the user whose row this event may write, once known
    async with invalidating_if_unknown_user(deps, shown_to), deps.db.transaction() as conn:
        looked = None
        if own_object:
            looked = await conn.fetchrow(Q.stripe_lock_and_read, lock_key, sub_id, event.id)
            seen = looked["seen"]
            if looked["rowUserId"] is not None:
                shown_to.append(looked["rowUserId"])
        else:
            await conn.execute(Q.stripe_lock_customer, lock_key)
            seen = await conn.fetchval(Q.stripe_event_seen, event.id)
        if seen is not None and not replay:
            return Outcome("duplicate")
        try:
            result = await _apply(conn, event, sub_id, customer_id, fetch, replay, looked)
        except Rejected as exc:
            result = Outcome("rejected", str(exc))
        if replay and seen is not None:
            await _write_deferred(conn, result)
            await conn.execute(Q.stripe_update_outcome, event.id, result.outcome, result.reason)
        else:
            changed = await _record(conn, (event.id, event.type, event.created, sub_id, customer_id,
                                           msgspec.json.decode(event.payload), result.outcome, result.reason),
                                    result.state_put, result.row_write)
            result.user_id = result.user_id or changed
    if result.user_id:
        await deps.cache.invalidate(keys=(keys.subscription_of(result.user_id),))
    if result.outcome in ("conflict", "rejected"):
        log.warning("stripe event %s (%s): %s: %s", event.id, event.type, result.outcome, result.reason)
    return result


@asynccontextmanager
async def invalidating_if_unknown_user(deps: Deps, shown_to: list[str]) -> AsyncIterator[None]:
    """An event whose commit reply is lost may have changed the row of the user in `shown_to`: Stripe's
    retry will be a `duplicate`, which invalidates nothing, so the cached copy is dropped now
    (unknown_outcome explains why)."""
    try:
        yield
    except BaseException:
        if shown_to:
            await invalidate_after_failed_write(deps, keys=(keys.subscription_of(shown_to[0]),))
        raise


def _reads_stripe(event_type: str) -> bool:
    """With STRIPE_API_KEY, these events read their subscription from Stripe's API (_apply)."""
    return event_type.startswith((SUBSCRIPTION_PREFIX, INVOICE_PREFIX)) or event_type == CHECKOUT


async def _asked_already(fetch: Fetch, sub_id: str) -> Fetch:
    """Ask Stripe for `sub_id` now; the returned Fetch answers with that (or raises its failure)."""
    try:
        obj = await fetch(sub_id)
    except StripeUnavailable as exc:
        failure = exc

        async def failed(wanted: str) -> dict:
            if wanted != sub_id:
                return await fetch(wanted)
            raise failure

        return failed

    async def answered(wanted: str) -> dict:
        return obj if wanted == sub_id else await fetch(wanted)

    return answered


async def _apply(conn, event: Event, sub_id: str | None, customer_id: str | None, fetch: Fetch | None,
                 replay: bool = False, looked=None) -> Outcome:
    if event.type.startswith(SUBSCRIPTION_PREFIX):
        if fetch is not None:
            return await _refresh(conn, event, sub_id, fetch)
        state = subscription_state(event.obj, created=event.created, event_id=event.id, event_type=event.type,
                                   previous=event.previous, had_nul=event.had_nul)
        return await apply_state(conn, state, replay=replay, looked=looked)  # looked: this subscription's
    if event.type.startswith(INVOICE_PREFIX):
        if sub_id is None:
            return Outcome("ignored", "the invoice bills no subscription")
        if fetch is not None:
            return await _refresh(conn, event, sub_id, fetch)
        return Outcome("ignored", "invoice events do not set a subscription's status")
    if event.type == CHECKOUT:
        result = await _checkout(conn, event, sub_id, customer_id)
        if fetch is not None and result.outcome == "applied":  # show Stripe's object from the start
            refreshed = await _refresh(conn, event, sub_id, fetch)
            result.user_id = result.user_id or refreshed.user_id
        return result
    return Outcome("ignored", "event type not handled")


async def _refresh(conn, event: Event, sub_id: str | None, fetch: Fetch) -> Outcome:
    """STRIPE_API_KEY set: the event only says this subscription changed; Stripe's API says how."""
    if sub_id is None:
        raise Rejected("names no subscription")
    try:
        obj = await fetch(sub_id)
    except StripeUnavailable as exc:
        if event.type.startswith(SUBSCRIPTION_PREFIX):  # the event's own object, under the rules
            log.warning("stripe event %s: %s; applying the event's object", event.id, exc)
            return await apply_state(conn, subscription_state(
                event.obj, created=event.created, event_id=event.id, event_type=event.type,
                previous=event.previous, had_nul=event.had_nul))
        return Outcome("pending", f"{exc}; replay it (stripe-replay --stored)")
    state = subscription_state(obj, created=event.created, event_id=event.id, event_type="api.retrieve",
                               source="api")
    stored = state_from_row(await conn.fetchrow(Q.stripe_state_get, sub_id))
    if stored is not None:  # an API read is at least as new as everything received before it
        state.created = max(state.created, stored.created)
    return await apply_state(conn, state)


async def apply_state(conn, state: State, *, replay: bool = False, looked=None) -> Outcome:
    """Advance the subscription's stored state by `state` (stripe_objects.advance), then show it on the
    user's row.

    `replay`: stripe-replay of a stored event. The event that set the stored state (it was `pending`: no
    row to show it on then) is not newer than itself, yet its state must now reach the row.
    `looked`: the stripe_lock_and_read lookup apply_event made already; the state and row writes are
    then left in the Outcome for apply_event to send with the event's row (`_record`)."""
    result = await _advance_and_show(conn, state, replay, looked)
    if looked is None:
        await _write_deferred(conn, result)
    return result


async def _write_deferred(conn, result: Outcome) -> None:
    if result.state_put is not None or result.row_write is not None:
        result.user_id = await _record(conn, None, result.state_put, result.row_write) or result.user_id
    result.state_put = result.row_write = None


async def _record(conn, event: tuple | None, state_put: tuple | None = None,
                  row_write: tuple | None = None) -> str | None:
    """sql/stripe.sql's stripe_record: the event row, the stored state, the subscriptions row (each
    skipped when None) in one statement; the row's userId when a shown value changed."""
    return await conn.fetchval(Q.stripe_record, *(event or (None,) * 8), *(state_put or (None,) * 13),
                               *(row_write or (None,) * 9))


async def _advance_and_show(conn, state: State, replay: bool, looked) -> Outcome:
    both = looked if looked is not None else await conn.fetchrow(Q.stripe_state_and_row, state.subscription_id)
    stored = state_from_row(both)
    put = None
    if replay and stored is not None and stored.event_id == state.event_id:
        state = stored  # the state stands as stored; only the row step is left
    else:
        following = advance(stored, state)
        if following is None:
            return Outcome("ignored", "the stored state is newer or the same")
        state = following
        put = _state_put_args(state, stored)
        if same_state(stored, state):  # nothing the row shows changed (a later second, or a merged event)
            return Outcome("ignored", "the same state", state_put=put)
    if state.customer_id is None and stored is not None:
        state.customer_id = stored.customer_id
    row = None
    if both["rowId"] is not None:
        row = {"id": both["rowId"], "userId": both["rowUserId"], "stripeCustomerId": both["rowCustomerId"],
               "stripeSubscriptionId": both["rowSubscriptionId"]}
    elif state.customer_id is not None:
        row = await conn.fetchrow(Q.stripe_row_of_customer, state.customer_id)
    if row is None:
        return Outcome("pending", "no user is linked to this customer yet", state_put=put)
    current = row["stripeSubscriptionId"]
    if current not in (None, state.subscription_id):
        shown = state_from_row(await conn.fetchrow(Q.stripe_state_get, current))
        if preference(state) <= _preference_of_shown(shown, row, current):
            return Outcome("applied", f"stored; the user's row stays on {current}", state_put=put)
    elif not preference(state)[0] and state.customer_id is not None:
        # The subscription the row shows has ended (or never started): if the customer still has a live
        # one (a Dashboard subscription took over, then ended), the row shows that one, not the end.
        if put is not None:  # the customer's states are read next: this one's new state first
            await _record(conn, None, put)
            put = None
        others = [state_from_row(r) for r in await conn.fetch(Q.stripe_states_of_customer, state.customer_id)]
        best = max(others, key=preference, default=None)
        if best is not None and best.subscription_id != state.subscription_id and preference(best)[0]:
            return Outcome("applied", f"stored; {state.subscription_id} ended, the user's row shows "
                                      f"{best.subscription_id}",
                           row_write=_row_write_args(row, state.customer_id, best))
    return Outcome("applied", None, state_put=put, row_write=_row_write_args(row, state.customer_id, state))


ROW_LIVE = frozenset({"ACTIVE", "TRIALING", "PAST_DUE"})


def _preference_of_shown(shown: State | None, row, subscription_id: str) -> tuple:
    """The row's current subscription, for `preference`. With no stored state (the row was written by
    PUT /v1/users/{id}/subscription: an import, the old platform) the row's own status says whether it
    is live, so an incomplete or ended newcomer never displaces a paying customer's subscription."""
    if shown is not None:
        return preference(shown)
    status = row["status"] if "status" in row.keys() else None
    return (status in ROW_LIVE, 0, subscription_id)


def _state_put_args(state: State, stored: State | None) -> tuple:
    """stripe_record's state arguments ($9-$21) for the state an event leaves."""
    price, _, period_end, cancel_at_period_end, cancel_at = state.row_values()
    subscription_created = state.subscription_created or (stored.subscription_created if stored else 0)
    previous = {"after": state.after, "before": state.before, "base": state.base, "second": state.second}
    return (state.subscription_id, state.customer_id, state.status, state.created, state.event_id, state.event_type,
            previous, subscription_created, state.source, price, period_end, cancel_at_period_end, cancel_at)


def _row_write_args(row, customer_id: str | None, state: State) -> tuple:
    """stripe_record's row arguments ($22-$30): the state onto the row. It returns the user id when a value changed
    (None: a no-op, or the row was re-linked to another customer since it was read: a checkout of another
    customer, holding another customer lock, committed first; then this event no longer speaks for the row)."""
    return (row["id"], customer_id, state.subscription_id, *state.row_values(), row["stripeCustomerId"])


async def _show(conn, row, customer_id: str | None, state: State) -> str | None:
    """Write the state onto the row now; the user id when a value changed (see _row_write_args)."""
    return await _record(conn, None, None, _row_write_args(row, customer_id, state))


async def _checkout(conn, event: Event, sub_id: str | None, customer_id: str | None) -> Outcome:
    obj = event.obj
    mode = obj.get("mode")
    if mode != "subscription" and not (mode is None and sub_id is not None):  # exports may omit mode
        return Outcome("ignored", f"checkout in mode {str(mode)[:20]} creates no subscription")
    user_id = checkout_user(obj, event.had_nul)
    if customer_id is None or sub_id is None:
        raise Rejected("a subscription checkout without customer or subscription")
    if user_id is None:
        return Outcome("pending", "the checkout names no user (client_reference_id or metadata.userId)")
    if not await conn.fetchval(Q.user_exists, user_id):
        return Outcome("pending", "no such user yet")
    # Two checkouts of one user with different customers hold different customer locks: this one
    # (always taken after a customer's) serialises them, so the second sees the first's row.
    await conn.execute(Q.stripe_lock_customer, f"user:{user_id}")
    by_customer = await conn.fetchrow(Q.stripe_row_of_customer, customer_id)
    if by_customer is not None and by_customer["userId"] != user_id:
        return Outcome("conflict", f"customer {customer_id} belongs to another user")
    row = await conn.fetchrow(Q.stripe_row_of_user, user_id)
    if row is not None and row["stripeCustomerId"] not in (None, customer_id) and row["stripeSubscriptionId"]:
        shown = state_from_row(await conn.fetchrow(Q.stripe_state_get, row["stripeSubscriptionId"]))
        if _preference_of_shown(shown, row, row["stripeSubscriptionId"])[0]:  # live: not re-linked
            return Outcome("conflict", f"user {user_id} has a live subscription of customer "
                                       f"{row['stripeCustomerId']}")
    await conn.execute(Q.stripe_state_placeholder, sub_id, customer_id, event.created, event.id)
    # The customer's preferred subscription (events that arrived before this checkout included).
    states = [state_from_row(r) for r in await conn.fetch(Q.stripe_states_of_customer, customer_id)]
    if not states:  # a state kept from before this customer was known: this checkout's subscription
        states = [state_from_row(await conn.fetchrow(Q.stripe_state_get, sub_id))]
    best = max(states, key=preference)
    await conn.execute(Q.stripe_mark_pending_applied, customer_id)
    if row is None:
        await conn.execute(Q.stripe_insert_row, new_id(), user_id, customer_id, best.subscription_id,
                           *best.row_values())
        return Outcome("applied", None, user_id)
    return Outcome("applied", None, await _show(conn, row, customer_id, best))


# ---- ops: replay, backfill, retention ---------------------------------------------------------------------


async def apply_snapshot(deps: Deps, obj: dict, read_at: int) -> Outcome:
    """A Subscription object listed from Stripe's API (stripe-sync) at `read_at`: applied like an event
    created then, under the customer's lock, so a webhook event newer than the read still wins."""
    try:
        state = subscription_state(obj, created=read_at, event_id=f"sync:{read_at}", event_type="api.list",
                                   source="sync")
    except Rejected as exc:
        return Outcome("rejected", str(exc))
    async with deps.db.transaction() as conn:
        await conn.execute(Q.stripe_lock_customer, state.customer_id or state.subscription_id)
        result = await apply_state(conn, state)
    if result.user_id:
        await deps.cache.invalidate(keys=(keys.subscription_of(result.user_id),))
    return result


async def replay_stored(deps: Deps, outcomes: list[str], fetch: Fetch | None = None, page: int = 500):
    """Apply the stored events of these outcomes again, oldest first; yields each Outcome."""
    after = (datetime.min, "")
    while True:
        rows = await deps.db.fetch(Q.stripe_events_to_replay, outcomes, after[0], after[1], page)
        for row in rows:
            payload = msgspec.json.encode(row["payload"])
            try:
                raw, stored, had_nul = decode_event(payload)
                event = parse_event(raw, stored, had_nul)
            except Rejected as exc:
                yield Outcome("rejected", str(exc))
                continue
            yield await apply_event(deps, event, fetch, replay=True)
        if len(rows) < page:
            return
        after = (rows[-1]["receivedAt"], rows[-1]["id"])


FINAL_OUTCOMES = ["applied", "duplicate", "ignored", "rejected"]  # pending and conflict wait for ops


async def prune_events(deps: Deps, batch_size: int | None = None):
    """Retention: delete events of a final outcome older than STRIPE_EVENT_RETENTION_DAYS, one bounded
    batch per transaction (0 days keeps everything). Returns a sweeps.SweepResult."""
    from .sweeps import SweepResult

    days = deps.settings.stripe_event_retention_days
    batch_size = batch_size or deps.settings.sweep_batch_size
    total = batches = 0
    longest = 0.0
    while days > 0:
        started = time.perf_counter()
        deleted = affected_rows(await deps.db.execute(Q.stripe_prune_events, FINAL_OUTCOMES, days, batch_size))
        longest = max(longest, time.perf_counter() - started)
        total += deleted
        batches += 1
        if deleted < batch_size:
            break
    if total:
        log.info("pruned stripe events", extra={"count": total, "batches": batches})
    return SweepResult(total, batches, round(longest * 1000, 2))
