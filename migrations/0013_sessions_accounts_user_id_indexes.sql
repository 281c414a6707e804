-- 0013 indexes on sessions("userId") and accounts("userId") (service-owned).
-- Why: the seed schema has none, so deleting a user (ON DELETE CASCADE), signing a user out everywhere
-- and listing a user's accounts each scanned the whole table (~16 ms per user at 100,000 users in
-- bench/). Built CONCURRENTLY (no transaction) so live tables keep taking writes; timeouts reset at the end.
-- transactional: false
-- depends: 0012_users_email_lower_index

-- A short lock_timeout: while this waits for a lock, every session behind it waits too, so give up
-- fast; `migrate` retries with backoff for up to MIGRATE_LOCK_WAIT and then names the blocker.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

-- yoyo runs this file outside a transaction (directive above); squawk assumes one for every file.
-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "sessions_userId_idx" ON "sessions"("userId");

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "accounts_userId_idx" ON "accounts"("userId");

RESET statement_timeout;

RESET lock_timeout;
