-- Rollback of 0020: drops the case-insensitive unique index without blocking writes.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

DROP INDEX CONCURRENTLY IF EXISTS "users_email_lower_key";

RESET statement_timeout;

RESET lock_timeout;
