-- Rollback of 0033: drops both expiry indexes without blocking writes.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

DROP INDEX CONCURRENTLY IF EXISTS "verification_tokens_expires_idx";

DROP INDEX CONCURRENTLY IF EXISTS "sessions_expires_idx";

RESET statement_timeout;

RESET lock_timeout;
