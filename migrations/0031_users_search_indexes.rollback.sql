-- Rollback of 0031: drops both trigram indexes without blocking writes.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

DROP INDEX CONCURRENTLY IF EXISTS "users_name_trgm_idx";

DROP INDEX CONCURRENTLY IF EXISTS "users_email_trgm_idx";

RESET statement_timeout;

RESET lock_timeout;
