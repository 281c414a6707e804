-- Stripe webhook bookkeeping (tables "stripe_events", "stripe_subscription_state" of migrations 0010,
-- 0014, 0015) and the subscription writes the events cause. Every lookup is by a key with an index:
-- applying an event costs the same at any history size.

-- name: stripe_lock_customer
-- Events of one customer are applied one at a time (concurrent deliveries wait here, per customer).
SELECT pg_advisory_xact_lock(hashtextextended($1, 0))

-- name: stripe_event_seen
-- A statement of its own after the lock: its snapshot then sees a duplicate committed while we waited.
SELECT outcome FROM stripe_events WHERE id = $1

-- name: stripe_update_outcome
-- A stored event applied again (stripe-replay): its new outcome.
UPDATE stripe_events SET outcome = $2, reason = $3,
    "appliedAt" = CASE WHEN $2 = 'pending' THEN NULL ELSE (now() AT TIME ZONE 'UTC') END
WHERE id = $1

-- name: stripe_state_get
SELECT "stripeSubscriptionId", "stripeCustomerId", status, "lastEventCreated", "lastEventId", "eventType",
       previous, "subscriptionCreated", source
FROM stripe_subscription_state WHERE "stripeSubscriptionId" = $1

-- name: stripe_state_and_row
-- One round trip for the two lookups of every subscription event: the stored state (NULLs: none yet)
-- and the subscriptions row showing this subscription (rowId NULL: none).
SELECT s."stripeSubscriptionId", s."stripeCustomerId", s.status, s."lastEventCreated", s."lastEventId",
       s."eventType", s.previous, s."subscriptionCreated", s.source,
       r.id AS "rowId", r."userId" AS "rowUserId", r."stripeCustomerId" AS "rowCustomerId",
       r."stripeSubscriptionId" AS "rowSubscriptionId"
FROM (SELECT $1::text AS id) AS wanted
LEFT JOIN stripe_subscription_state s ON s."stripeSubscriptionId" = wanted.id
LEFT JOIN subscriptions r ON r."stripeSubscriptionId" = wanted.id

-- name: stripe_lock_and_read
-- A subscription event's one round trip before its writes (function of migration 0017): the customer's
-- lock ($1, as stripe_lock_customer), then, with a snapshot taken after it, whether the event id ($3)
-- was stored already, the subscription's stored state ($2; NULLs: none yet) and the subscriptions row
-- showing it (rowId NULL: none).
SELECT * FROM stripe_lock_and_read($1, $2, $3)

-- name: stripe_record
-- Every write an event makes, in one round trip (the webhook's common path sends all three at once):
--   $1-$8    the event with its outcome (id, type, created, subscription, customer, payload, outcome,
--            reason; appliedAt stays NULL only for a pending event, which waits for its customer or
--            user to be linked); skipped when $1 is NULL;
--   $9-$21   the subscription's stored state (stripe_subscription_state); skipped when $9 is NULL;
--   $22-$30  the subscriptions row showing it; skipped when $22 is NULL. Only a row whose values change
--            is written, so a no-op event leaves "updatedAt" (and the cache) alone; $30 is the customer
--            the row named when it was read: a row re-linked since (re-checked after waiting for its
--            lock) is left alone.
-- Returns the row's userId when a shown value changed (its cached subscription is then dropped).
-- Data-modifying CTEs all run, whether read or not.
WITH event AS (
    INSERT INTO stripe_events (id, type, created, "stripeSubscriptionId", "stripeCustomerId", payload,
                               outcome, reason, "appliedAt")
    SELECT $1::text, $2::text, $3::bigint, $4::text, $5::text, $6::jsonb, $7::text, $8::text,
           CASE WHEN $7::text = 'pending' THEN NULL ELSE (now() AT TIME ZONE 'UTC') END
    WHERE $1::text IS NOT NULL
    ON CONFLICT (id) DO NOTHING
), state AS (
    INSERT INTO stripe_subscription_state ("stripeSubscriptionId", "stripeCustomerId", status,
        "lastEventCreated", "lastEventId", "eventType", previous, "subscriptionCreated", source,
        "stripePriceId", "currentPeriodEnd", "cancelAtPeriodEnd", "cancelAt")
    SELECT $9::text, $10::text, $11::text, $12::bigint, $13::text, $14::text, $15::jsonb, $16::bigint, $17::text,
           $18::text, $19::timestamp, $20::boolean, $21::timestamp
    WHERE $9::text IS NOT NULL
    ON CONFLICT ("stripeSubscriptionId") DO UPDATE SET
        "stripeCustomerId" = COALESCE(EXCLUDED."stripeCustomerId", stripe_subscription_state."stripeCustomerId"),
        status = EXCLUDED.status, "lastEventCreated" = EXCLUDED."lastEventCreated",
        "lastEventId" = EXCLUDED."lastEventId", "eventType" = EXCLUDED."eventType", previous = EXCLUDED.previous,
        "subscriptionCreated" = EXCLUDED."subscriptionCreated", source = EXCLUDED.source,
        "stripePriceId" = EXCLUDED."stripePriceId", "currentPeriodEnd" = EXCLUDED."currentPeriodEnd",
        "cancelAtPeriodEnd" = EXCLUDED."cancelAtPeriodEnd", "cancelAt" = EXCLUDED."cancelAt"
)
UPDATE subscriptions SET
    "stripeCustomerId" = $23, "stripeSubscriptionId" = $24, "stripePriceId" = $25,
    status = $26::"SubscriptionStatus", "currentPeriodEnd" = $27, "cancelAtPeriodEnd" = $28, "cancelAt" = $29
WHERE id = $22::text
  AND "stripeCustomerId" IS NOT DISTINCT FROM $30
  AND ("stripeCustomerId", "stripeSubscriptionId", "stripePriceId", status, "currentPeriodEnd",
       "cancelAtPeriodEnd", "cancelAt")
      IS DISTINCT FROM ($23, $24, $25, $26::"SubscriptionStatus", $27, $28, $29)
RETURNING "userId"

-- name: stripe_state_placeholder
-- A checkout names a subscription no Subscription object has described yet.
INSERT INTO stripe_subscription_state ("stripeSubscriptionId", "stripeCustomerId", "lastEventCreated",
                                       "lastEventId", "eventType", "subscriptionCreated", source)
VALUES ($1, $2, $3, $4, 'checkout.session.completed', $3, 'checkout')
ON CONFLICT ("stripeSubscriptionId") DO UPDATE
    -- a state kept from before the customer was recorded with it (0010's rows) learns its customer
    SET "stripeCustomerId" = COALESCE(stripe_subscription_state."stripeCustomerId", EXCLUDED."stripeCustomerId")
    WHERE stripe_subscription_state."stripeCustomerId" IS NULL

-- name: stripe_states_of_customer
SELECT "stripeSubscriptionId", "stripeCustomerId", status, "lastEventCreated", "lastEventId", "eventType",
       previous, "subscriptionCreated", source
FROM stripe_subscription_state WHERE "stripeCustomerId" = $1

-- name: stripe_row_of_customer
SELECT id, "userId", "stripeCustomerId", "stripeSubscriptionId", status::text AS status FROM subscriptions
WHERE "stripeCustomerId" = $1

-- name: stripe_row_of_user
SELECT id, "userId", "stripeCustomerId", "stripeSubscriptionId", status::text AS status FROM subscriptions
WHERE "userId" = $1

-- name: stripe_insert_row
INSERT INTO subscriptions (id, "userId", "stripeCustomerId", "stripeSubscriptionId", "stripePriceId", status,
                           "currentPeriodEnd", "cancelAtPeriodEnd", "cancelAt")
VALUES ($1, $2, $3, $4, $5, $6::"SubscriptionStatus", $7, $8, $9)

-- name: stripe_mark_pending_applied
-- The customer's checkout has linked it: its waiting events are applied (through the stored state).
UPDATE stripe_events SET outcome = 'applied', reason = NULL, "appliedAt" = (now() AT TIME ZONE 'UTC')
WHERE "stripeCustomerId" = $1 AND "appliedAt" IS NULL AND outcome = 'pending'
  -- Subscription events only: their state is stored and now shown; a pending invoice (Stripe's API was
  -- down) or checkout still needs its own replay.
  AND type LIKE 'customer.subscription.%'

-- name: stripe_event_get
SELECT id, type, created, "stripeSubscriptionId", "stripeCustomerId", outcome, reason, "receivedAt",
       "appliedAt", payload
FROM stripe_events WHERE id = $1

-- name: stripe_events_to_replay
-- stripe-replay --stored: the stored events of some outcomes, oldest first, a page at a time.
SELECT id, payload, "receivedAt" FROM stripe_events
WHERE outcome = ANY($1::text[]) AND ("receivedAt", id) > ($2, $3)
ORDER BY "receivedAt", id
LIMIT $4

-- name: stripe_prune_events
-- Retention: one bounded batch of old events whose outcome is final (pending and conflict are kept),
-- through stripe_events_outcome_received_idx; SKIP LOCKED lets several instances prune at once.
DELETE FROM stripe_events
WHERE id = ANY (ARRAY(
    SELECT id FROM stripe_events
    WHERE outcome = ANY($1::text[]) AND "receivedAt" < (now() AT TIME ZONE 'UTC') - make_interval(days => $2)
    LIMIT $3
    FOR UPDATE SKIP LOCKED
))

-- name: stripe_sync_get
SELECT since, cursor, done, "finishedAt" FROM stripe_sync_progress WHERE name = $1

-- name: stripe_sync_save
INSERT INTO stripe_sync_progress (name, since, cursor, done, "finishedAt", "updatedAt")
VALUES ($1, $2, $3, $4, $5, (now() AT TIME ZONE 'UTC'))
ON CONFLICT (name) DO UPDATE SET since = EXCLUDED.since, cursor = EXCLUDED.cursor, done = EXCLUDED.done,
    "finishedAt" = EXCLUDED."finishedAt", "updatedAt" = EXCLUDED."updatedAt"
