-- 0030 the pg_trgm extension (PostgreSQL contrib) for the e-mail/name search indexes of 0031.
-- Why: like/ilike '%text%' can use no btree; a GIN index with gin_trgm_ops finds the rows by their
-- 3-character pieces. pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
-- The embedded PostgreSQL (pgserver wheel) ships no contrib modules: the migrator skips this file and
-- 0031 there (requires-extension below), and searches scan instead (docs/operations.md).
-- requires-extension: pg_trgm
-- depends: 0013_sessions_accounts_user_id_indexes

SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

CREATE EXTENSION IF NOT EXISTS pg_trgm;
