-- Rollback of 0021: builds users_email_lower_idx (0012) again, without blocking writes.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_email_lower_idx" ON "users"(lower("email"));

RESET statement_timeout;

RESET lock_timeout;
