-- Rollback of 0032: drops the list indexes without blocking writes.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

DROP INDEX CONCURRENTLY IF EXISTS "users_role_createdAt_id_idx";

DROP INDEX CONCURRENTLY IF EXISTS "subscriptions_currentPeriodEnd_idx";

DROP INDEX CONCURRENTLY IF EXISTS "subscriptions_status_createdAt_id_idx";

DROP INDEX CONCURRENTLY IF EXISTS "subscriptions_createdAt_id_idx";

DROP INDEX CONCURRENTLY IF EXISTS "chart_cache_createdAt_id_idx";

RESET statement_timeout;

RESET lock_timeout;
