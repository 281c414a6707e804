-- Stripe webhook bookkeeping (tables "stripe_events", "stripe_subscription_state" of migration 0010)
-- and the subscription writes the events cause.

-- name: stripe_lock_customer
-- Events of one customer are applied one at a time (concurrent deliveries wait here, per customer).
SELECT pg_advisory_xact_lock(hashtextextended($1, 0))

-- name: stripe_insert_event
-- Nothing comes back for an event id already stored: a retry or duplicate delivery.
INSERT INTO stripe_events (id, type, created, "stripeSubscriptionId", "stripeCustomerId", payload)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO NOTHING
RETURNING id

-- name: stripe_find_subscription
SELECT id, "userId", "stripeCustomerId", "stripeSubscriptionId"
FROM subscriptions
WHERE "stripeSubscriptionId" = $1 OR ("stripeCustomerId" = $2 AND $2 IS NOT NULL)
ORDER BY ("stripeSubscriptionId" = $1) DESC NULLS LAST
LIMIT 1

-- name: stripe_link_checkout
-- checkout.session.completed: the user's subscription row now names the Stripe customer and subscription.
INSERT INTO subscriptions (id, "userId", "stripeCustomerId", "stripeSubscriptionId")
VALUES ($1, $2, $3, $4)
ON CONFLICT ("userId") DO UPDATE SET
    "stripeCustomerId" = COALESCE(EXCLUDED."stripeCustomerId", subscriptions."stripeCustomerId"),
    "stripeSubscriptionId" = COALESCE(EXCLUDED."stripeSubscriptionId", subscriptions."stripeSubscriptionId")
RETURNING id, "userId", "stripeCustomerId", "stripeSubscriptionId"

-- name: stripe_events_of_subscription
-- Every stored event that speaks of this subscription (or of its customer without naming one), oldest
-- first: folding them in this order gives the state in-order delivery would have given.
SELECT id, type, created, payload
FROM stripe_events
WHERE ("stripeSubscriptionId" = $1 AND $1 IS NOT NULL)
   OR ("stripeSubscriptionId" IS NULL AND "stripeCustomerId" = $2)
ORDER BY created, id

-- name: stripe_apply_state
UPDATE subscriptions SET
    "stripeCustomerId" = COALESCE($2, "stripeCustomerId"),
    "stripeSubscriptionId" = COALESCE($3, "stripeSubscriptionId"),
    "stripePriceId" = CASE WHEN $4::boolean THEN $5 ELSE "stripePriceId" END,
    status = CASE WHEN $6::boolean THEN $7::"SubscriptionStatus" ELSE status END,
    "currentPeriodEnd" = CASE WHEN $8::boolean THEN $9 ELSE "currentPeriodEnd" END,
    "cancelAtPeriodEnd" = CASE WHEN $10::boolean THEN $11 ELSE "cancelAtPeriodEnd" END
WHERE id = $1
RETURNING "userId"

-- name: stripe_mark_applied
UPDATE stripe_events SET "appliedAt" = (now() AT TIME ZONE 'UTC')
WHERE id = ANY($1::text[]) AND "appliedAt" IS NULL

-- name: stripe_record_newest
INSERT INTO stripe_subscription_state ("stripeSubscriptionId", "lastEventCreated", "lastEventId")
VALUES ($1, $2, $3)
ON CONFLICT ("stripeSubscriptionId") DO UPDATE SET
    "lastEventCreated" = EXCLUDED."lastEventCreated", "lastEventId" = EXCLUDED."lastEventId"
WHERE stripe_subscription_state."lastEventCreated" <= EXCLUDED."lastEventCreated"
