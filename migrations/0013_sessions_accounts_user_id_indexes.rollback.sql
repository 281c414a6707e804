-- Rollback of 0013: drops both indexes without blocking writes.
SET lock_timeout = '10s';

SET statement_timeout = '30min';

DROP INDEX CONCURRENTLY IF EXISTS "accounts_userId_idx";

DROP INDEX CONCURRENTLY IF EXISTS "sessions_userId_idx";

RESET statement_timeout;

RESET lock_timeout;
