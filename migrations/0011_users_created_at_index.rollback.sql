-- Rollback of 0011: drops the list index without blocking writes.
SET lock_timeout = '10s';

SET statement_timeout = '30min';

DROP INDEX CONCURRENTLY IF EXISTS "users_createdAt_id_idx";

RESET statement_timeout;

RESET lock_timeout;
