-- Rollback of 0010: drops the Stripe bookkeeping (subscriptions themselves are kept).

-- A short lock_timeout: while this waits for a lock, every session behind it waits too, so give up
-- fast; `migrate` retries with backoff for up to MIGRATE_LOCK_WAIT and then names the blocker.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';
DROP TABLE "stripe_subscription_state";

DROP TABLE "stripe_events";
