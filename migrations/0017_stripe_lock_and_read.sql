-- 0017 Stripe: the customer's lock and a subscription event's lookup in one round trip.
-- Why: every webhook event took the customer's advisory lock in one statement and read its state in the
-- next (a statement of its own, so that its snapshot sees what was committed while it waited). In a
-- VOLATILE function each statement takes a fresh snapshot (READ COMMITTED), so both fit in one call:
-- the lookup below runs after the lock is granted and sees a duplicate committed meanwhile. The webhook's
-- common path is then BEGIN, this call, one write (sql/stripe.sql stripe_record), COMMIT.
-- The lock key is the same as sql/stripe.sql's stripe_lock_customer, which the other paths still use.
-- Creates a function only: no lock on any table.
-- depends: 0016_stripe_backfill_state

SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

CREATE FUNCTION "stripe_lock_and_read"(lock_key TEXT, subscription_id TEXT, event_id TEXT)
RETURNS TABLE (
    "seen" TEXT,
    "stripeSubscriptionId" TEXT, "stripeCustomerId" TEXT, "status" TEXT, "lastEventCreated" BIGINT,
    "lastEventId" TEXT, "eventType" TEXT, "previous" JSONB, "subscriptionCreated" BIGINT, "source" TEXT,
    "rowId" TEXT, "rowUserId" TEXT, "rowCustomerId" TEXT, "rowSubscriptionId" TEXT
)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(lock_key, 0));
    RETURN QUERY
    SELECT (SELECT e."outcome" FROM "stripe_events" e WHERE e."id" = event_id),
           s."stripeSubscriptionId", s."stripeCustomerId", s."status", s."lastEventCreated", s."lastEventId",
           s."eventType", s."previous", s."subscriptionCreated", s."source",
           r."id", r."userId", r."stripeCustomerId", r."stripeSubscriptionId"
    FROM (SELECT subscription_id AS id) AS wanted
    LEFT JOIN "stripe_subscription_state" s ON s."stripeSubscriptionId" = wanted.id
    LEFT JOIN "subscriptions" r ON r."stripeSubscriptionId" = wanted.id;
END
$$;
