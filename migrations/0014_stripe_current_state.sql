-- 0014 Stripe: a stored current state per subscription, an outcome per event, a scheduled end date.
-- Why: applying an event used to re-read every stored event of its subscription (slow at any history
-- size, and wrong for same-second events). Now each event compares itself with the subscription's
-- stored state and updates it in O(1) (docs/API.md, "How an event is applied").
--   * stripe_subscription_state: per Stripe subscription, the state the newest event (or the API) gave:
--     Stripe's status, the fields the subscriptions row shows, the customer, the subscription's own
--     creation time, and the previous_attributes of the event that set it (orders same-second events).
--     "status" NULL: known from a checkout only, no Subscription object seen yet.
--   * stripe_events: what became of each event ("outcome" applied/pending/duplicate/ignored/conflict/
--     rejected, "reason" for ops).
--   * stripe_sync_progress: where `python -m service stripe-sync` stopped, so a rerun resumes there.
--   * subscriptions."cancelAt": when a scheduled cancellation ends the subscription (Stripe's cancel_at),
--     service-owned and nullable; the seed's columns are untouched.
-- Only nullable columns are added: no rewrite, no long lock. Indexes follow in 0015 (CONCURRENTLY).
-- depends: 0010_stripe_events

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

ALTER TABLE "stripe_subscription_state"
    ADD COLUMN "stripeCustomerId" TEXT,
    ADD COLUMN "status" TEXT,
    ADD COLUMN "eventType" TEXT,
    ADD COLUMN "previous" JSONB,
    ADD COLUMN "stripePriceId" TEXT,
    ADD COLUMN "currentPeriodEnd" TIMESTAMP(3),
    ADD COLUMN "cancelAtPeriodEnd" BOOLEAN,
    ADD COLUMN "cancelAt" TIMESTAMP(3),
    ADD COLUMN "subscriptionCreated" BIGINT,
    ADD COLUMN "source" TEXT;

ALTER TABLE "stripe_events"
    ADD COLUMN "outcome" TEXT,
    ADD COLUMN "reason" TEXT;

ALTER TABLE "subscriptions" ADD COLUMN "cancelAt" TIMESTAMP(3);

CREATE TABLE "stripe_sync_progress" (
    "name" TEXT NOT NULL,
    "since" BIGINT,
    "cursor" TEXT,
    "done" INTEGER NOT NULL DEFAULT 0,
    "finishedAt" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),

    CONSTRAINT "stripe_sync_progress_pkey" PRIMARY KEY ("name")
);
