-- 0035 e-mail prefix index and finer statistics for the user searches (service-owned).
-- Why: GET /v1/users?email=ilike.emma.rossi4* is searched as lower(email) LIKE lower('emma.rossi4%') (the
-- same rows as ILIKE); with a btree on lower(email) text_pattern_ops that is a range over the matching rows
-- (1.3 ms at 1M users), where the trigram index of 0031 decodes the posting lists of every trigram of the
-- prefix and rechecks each candidate (7-30 ms). text_pattern_ops: the default operator class serves LIKE
-- only under the C collation.
-- Statistics: the planner estimates a substring search by matching the pattern against the column's
-- histogram. With the default 100 entries, a name shared by 0.6% of 1M users was estimated at 89 or
-- 9,004 rows depending on the sample of the last ANALYZE (the page then took 23 or 2 ms, bench/RESULTS.md);
-- with 1,000 entries the estimates stayed within 3% (ANALYZE of users: ~3.5 s instead of ~1 s at 1M rows).
-- The index's expression gets the same, for prefixes. ANALYZE at the end gathers them now rather than after
-- autovacuum's next pass. SET STATISTICS and ANALYZE take SHARE UPDATE EXCLUSIVE: reads and writes go on.
-- The index is built CONCURRENTLY (no transaction); timeouts reset at the end.
-- transactional: false
-- depends: 0013_sessions_accounts_user_id_indexes

SET lock_timeout = '2s';

SET statement_timeout = '60min';

-- yoyo runs this file outside a transaction (directive above); squawk assumes one for every file.
-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_email_lower_pattern_idx" ON "users"(lower("email") text_pattern_ops);

ALTER INDEX "users_email_lower_pattern_idx" ALTER COLUMN 1 SET STATISTICS 1000;

ALTER TABLE "users" ALTER COLUMN "email" SET STATISTICS 1000, ALTER COLUMN "name" SET STATISTICS 1000;

ANALYZE "users";

RESET statement_timeout;

RESET lock_timeout;
