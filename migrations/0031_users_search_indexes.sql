-- 0031 trigram indexes on users.email and users.name (service-owned) for GET /v1/users?email=ilike.*x*.
-- Why: without them every e-mail/name search read all users (630-860 ms at 1M users); with them a
-- search with 3 or more characters in a row is a bitmap index scan. Built CONCURRENTLY (no transaction)
-- so live tables keep taking writes; timeouts are session settings here, reset at the end.
-- transactional: false
-- requires-extension: pg_trgm
-- depends: 0030_pg_trgm_extension

SET lock_timeout = '2s';

SET statement_timeout = '60min';

-- yoyo runs this file outside a transaction (directive above); squawk assumes one for every file.
-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_email_trgm_idx" ON "users" USING gin ("email" gin_trgm_ops);

-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_name_trgm_idx" ON "users" USING gin ("name" gin_trgm_ops);

RESET statement_timeout;

RESET lock_timeout;
