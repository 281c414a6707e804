-- 0011 users by creation time (service-owned index for GET /v1/users?sort=-createdAt).
-- Why: the default list order is newest first; with ("createdAt", "id") a page is an index range scan
-- and a keyset cursor (createdAt, id) is O(limit) however deep. Built CONCURRENTLY so that adding it to
-- a live table does not block writes; CONCURRENTLY cannot run in a transaction, hence the directive.
-- The timeouts are session settings here (no transaction), so they are reset at the end.
-- transactional: false
-- depends: 0002_users

-- A short lock_timeout: while this waits for a lock, every session behind it waits too, so give up
-- fast; `migrate` retries with backoff for up to MIGRATE_LOCK_WAIT and then names the blocker.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

-- yoyo runs this file outside a transaction (directive above); squawk assumes one for every file.
-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_createdAt_id_idx" ON "users"("createdAt", "id");

RESET statement_timeout;

RESET lock_timeout;
