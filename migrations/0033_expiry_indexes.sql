-- 0033 indexes on sessions(expires) and verification_tokens(expires) (service-owned).
-- Why: the sweeps of expired sessions and sign-in tokens take the oldest expired rows in batches; without
-- an index each batch read the whole table (1M expired of 2M sessions, 689 MB, were never deleted).
-- Built CONCURRENTLY (no transaction) so live tables keep taking writes; timeouts reset at the end.
-- transactional: false
-- depends: 0013_sessions_accounts_user_id_indexes

SET lock_timeout = '2s';

SET statement_timeout = '60min';

-- yoyo runs this file outside a transaction (directive above); squawk assumes one for every file.
-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "sessions_expires_idx" ON "sessions"("expires");

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "verification_tokens_expires_idx" ON "verification_tokens"("expires");

RESET statement_timeout;

RESET lock_timeout;
