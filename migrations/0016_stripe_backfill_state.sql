-- 0016 Stripe: what 0014 added, filled in for the rows stored before it (a database upgraded from the
-- first version, which folded every stored event).
-- Why: 0014 adds stripe_events."outcome" and the state's "status" and "stripeCustomerId" as NULL. For rows
-- from before it that NULL would mean "no Subscription object seen yet": any older event could replace the
-- state (a retried old event could revive a canceled subscription), old events would never be pruned, and
-- old pending events would never be replayed. The subscriptions rows hold what the old fold decided, and
-- "appliedAt" tells applied from pending. On a new database both statements change nothing.
-- Row locks only (no table lock beyond ROW EXCLUSIVE); on 300,000 stored events a few seconds.
-- depends: 0015_stripe_indexes

SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '600s';

UPDATE "stripe_events"
SET "outcome" = CASE WHEN "appliedAt" IS NULL THEN 'pending' ELSE 'applied' END
WHERE "outcome" IS NULL;

-- INACTIVE was incomplete, incomplete_expired or paused: "incomplete" is the one that is neither live nor
-- terminal, so a later event of the subscription still decides.
UPDATE "stripe_subscription_state" AS s
SET "status" = CASE sub."status"
        WHEN 'ACTIVE' THEN 'active'
        WHEN 'TRIALING' THEN 'trialing'
        WHEN 'PAST_DUE' THEN 'past_due'
        WHEN 'CANCELLED' THEN 'canceled'
        ELSE 'incomplete' END,
    "stripeCustomerId" = COALESCE(s."stripeCustomerId", sub."stripeCustomerId"),
    "source" = COALESCE(s."source", 'backfill')
FROM "subscriptions" AS sub
WHERE sub."stripeSubscriptionId" = s."stripeSubscriptionId"
  AND s."status" IS NULL
  AND s."source" IS NULL;
