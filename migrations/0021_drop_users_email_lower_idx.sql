-- 0021 drops users_email_lower_idx (0012): the unique index of 0020 serves the same lookups.
-- Why: two indexes on lower(email) double the index work of every insert and e-mail change for nothing.
-- Dropped CONCURRENTLY (no transaction) so lookups and writes go on meanwhile.
-- transactional: false
-- depends: 0020_users_email_unique_lower

SET lock_timeout = '2s';

SET statement_timeout = '30min';

DROP INDEX CONCURRENTLY IF EXISTS "users_email_lower_idx";

RESET statement_timeout;

RESET lock_timeout;
