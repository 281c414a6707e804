-- 0012 users by lower(email) (service-owned index for case-insensitive lookup by e-mail).
-- Why: the service stores e-mails lower-cased, but rows the old platform wrote may not be, so lookups
-- compare lower(email); this index keeps that an index scan. Not unique: the seed's users_email_key
-- already decides uniqueness, and old rows differing only in case must not block the migration.
-- Built CONCURRENTLY (no transaction) so a live table keeps taking writes; timeouts reset at the end.
-- transactional: false
-- depends: 0011_users_created_at_index

-- A short lock_timeout: while this waits for a lock, every session behind it waits too, so give up
-- fast; `migrate` retries with backoff for up to MIGRATE_LOCK_WAIT and then names the blocker.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

-- yoyo runs this file outside a transaction (directive above); squawk assumes one for every file.
-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_email_lower_idx" ON "users"(lower("email"));

RESET statement_timeout;

RESET lock_timeout;
