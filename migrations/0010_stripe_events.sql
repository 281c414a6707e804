-- 0010 Stripe event bookkeeping (service-owned tables; the seed's columns are untouched).
-- Why: Stripe delivers events at least once and in any order.
--   * "stripe_events" keeps every event received, by Stripe's event id, so a retry is recognised and
--     an event that cannot be applied yet (its customer or user is not linked) waits here until it can.
--   * "stripe_subscription_state" keeps, per Stripe subscription, the "created" time of the newest
--     event applied, so an older event that arrives late changes nothing.
-- depends: 0006_subscriptions

-- A short lock_timeout: while this waits for a lock, every session behind it waits too, so give up
-- fast; `migrate` retries with backoff for up to MIGRATE_LOCK_WAIT and then names the blocker.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

CREATE TABLE "stripe_events" (
    "id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "created" BIGINT NOT NULL,
    "stripeSubscriptionId" TEXT,
    "stripeCustomerId" TEXT,
    "payload" JSONB NOT NULL,
    "receivedAt" TIMESTAMP(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "appliedAt" TIMESTAMP(3),

    CONSTRAINT "stripe_events_pkey" PRIMARY KEY ("id")
);

-- Events still waiting for their customer or user to be linked, found by customer when the link appears.
CREATE INDEX "stripe_events_pending_customer_idx" ON "stripe_events"("stripeCustomerId") WHERE "appliedAt" IS NULL;

CREATE TABLE "stripe_subscription_state" (
    "stripeSubscriptionId" TEXT NOT NULL,
    "lastEventCreated" BIGINT NOT NULL,
    "lastEventId" TEXT NOT NULL,

    CONSTRAINT "stripe_subscription_state_pkey" PRIMARY KEY ("stripeSubscriptionId")
);
