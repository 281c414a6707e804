-- Rollback of 0015: drops the indexes without blocking writes.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

DROP INDEX CONCURRENTLY IF EXISTS "stripe_events_received_idx";

DROP INDEX CONCURRENTLY IF EXISTS "stripe_events_subscription_received_idx";

DROP INDEX CONCURRENTLY IF EXISTS "stripe_events_customer_received_idx";

DROP INDEX CONCURRENTLY IF EXISTS "stripe_events_type_received_idx";

DROP INDEX CONCURRENTLY IF EXISTS "stripe_events_outcome_received_idx";

DROP INDEX CONCURRENTLY IF EXISTS "stripe_subscription_state_customer_idx";

RESET statement_timeout;

RESET lock_timeout;
