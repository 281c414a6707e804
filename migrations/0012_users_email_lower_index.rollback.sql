-- Rollback of 0012: drops the index without blocking writes.
SET lock_timeout = '10s';

SET statement_timeout = '30min';

DROP INDEX CONCURRENTLY IF EXISTS "users_email_lower_idx";

RESET statement_timeout;

RESET lock_timeout;
