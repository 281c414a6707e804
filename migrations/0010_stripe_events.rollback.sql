-- Rollback of 0010: drops the Stripe bookkeeping (subscriptions themselves are kept).

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';
DROP TABLE "stripe_subscription_state";

DROP TABLE "stripe_events";
