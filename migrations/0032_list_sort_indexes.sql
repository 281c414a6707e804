-- 0032 indexes behind the list routes' default sorts and filters (service-owned).
-- Why: GET /v1/charts and /v1/subscriptions sort newest first; without ("createdAt", id) the charts list
-- was a 1 s sequential scan of 2.9 GB at 2M rows and subscriptions' status filters 25-42 ms scans.
-- With them a page, and a keyset cursor however deep, is an index range scan. (role|status, "createdAt",
-- id) serves a filter on the role/status with the default order; "currentPeriodEnd" serves billing
-- jobs' range filters. Built CONCURRENTLY (no transaction); timeouts reset at the end.
-- transactional: false
-- depends: 0013_sessions_accounts_user_id_indexes

SET lock_timeout = '2s';

SET statement_timeout = '60min';

-- yoyo runs this file outside a transaction (directive above); squawk assumes one for every file.
-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "chart_cache_createdAt_id_idx" ON "chart_cache"("createdAt", "id");

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "subscriptions_createdAt_id_idx" ON "subscriptions"("createdAt", "id");

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "subscriptions_status_createdAt_id_idx"
    ON "subscriptions"("status", "createdAt", "id");

-- NULLS FIRST: the list's order for a nullable field (ASC NULLS FIRST, or backwards DESC NULLS LAST).
-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "subscriptions_currentPeriodEnd_idx"
    ON "subscriptions"("currentPeriodEnd" NULLS FIRST, "id");

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_role_createdAt_id_idx" ON "users"("role", "createdAt", "id");

RESET statement_timeout;

RESET lock_timeout;
