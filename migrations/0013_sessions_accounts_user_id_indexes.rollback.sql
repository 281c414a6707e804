-- Rollback of 0013: drops both indexes without blocking writes.
-- A short lock_timeout: while this waits for a lock, every session behind it waits too, so give up
-- fast; `migrate` retries with backoff for up to MIGRATE_LOCK_WAIT and then names the blocker.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

DROP INDEX CONCURRENTLY IF EXISTS "accounts_userId_idx";

DROP INDEX CONCURRENTLY IF EXISTS "sessions_userId_idx";

RESET statement_timeout;

RESET lock_timeout;
