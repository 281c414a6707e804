-- 0015 indexes for every Stripe lookup (service-owned).
-- Why: with the stored state (0014) applying an event reads only by keys; these make each read an
-- index lookup at any history size:
--   * the subscriptions of a customer (which subscription is the user's, applying on checkout);
--   * the ops list of events by outcome, type, customer or subscription, newest first, and the
--     retention sweep (outcome + age);
--   * events waiting for a customer's checkout (0010's partial index on "appliedAt" IS NULL stays).
-- Built CONCURRENTLY (no transaction) so live tables keep taking writes; timeouts reset at the end.
-- transactional: false
-- depends: 0014_stripe_current_state

SET lock_timeout = '2s';

SET statement_timeout = '30min';

-- yoyo runs this file outside a transaction (directive above); squawk assumes one for every file.
-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "stripe_subscription_state_customer_idx"
    ON "stripe_subscription_state"("stripeCustomerId");

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "stripe_events_outcome_received_idx"
    ON "stripe_events"("outcome", "receivedAt");

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "stripe_events_type_received_idx"
    ON "stripe_events"("type", "receivedAt");

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "stripe_events_customer_received_idx"
    ON "stripe_events"("stripeCustomerId", "receivedAt");

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "stripe_events_subscription_received_idx"
    ON "stripe_events"("stripeSubscriptionId", "receivedAt");

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "stripe_events_received_idx"
    ON "stripe_events"("receivedAt");

RESET statement_timeout;

RESET lock_timeout;
