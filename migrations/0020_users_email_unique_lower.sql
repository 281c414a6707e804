-- 0020 e-mail uniqueness is case-insensitive: a unique index on lower(email) (service-owned).
-- Why: the seed's users_email_key is case-sensitive, so rows the old platform wrote as "Ada@x.com" and
-- "ada@x.com" could both exist, and a by-e-mail lookup could land on the newer sign-up (an account
-- takeover). The check below refuses to go on while such rows exist and lists them; merge them first
-- (`python -m service find-email-duplicates` lists them with their ids), then run migrate again.
-- Built CONCURRENTLY (no transaction) so a live table keeps taking writes. A build interrupted half-way
-- leaves an INVALID index behind; this file is then re-run (yoyo did not record it), so it first drops
-- any such leftover. Timeouts reset at the end.
-- transactional: false
-- depends: 0013_sessions_accounts_user_id_indexes

SET lock_timeout = '2s';

SET statement_timeout = '30min';

DO $$
DECLARE
    groups integer;
    report text;
BEGIN
    SELECT count(*), string_agg(line, E'\n')
    INTO groups, report
    FROM (
        SELECT lower(email) || ': ' || string_agg(id || ' <' || email || '>', ', ' ORDER BY "createdAt", id) AS line
        FROM users
        GROUP BY lower(email)
        HAVING count(*) > 1
        ORDER BY lower(email)
        LIMIT 50
    ) AS duplicates;
    IF groups > 0 THEN
        RAISE EXCEPTION 'users has e-mail addresses that differ only in case; merge them before this migration (python -m service find-email-duplicates lists all of them)'
            USING DETAIL = 'first ' || groups || ' groups (lower(email): id <email>, oldest first):' || E'\n' || report,
                  ERRCODE = 'unique_violation';
    END IF;
END
$$;

-- squawk-ignore ban-concurrent-index-creation-in-transaction
DROP INDEX CONCURRENTLY IF EXISTS "users_email_lower_key";

-- yoyo runs this file outside a transaction (directive above); squawk assumes one for every file.
-- squawk-ignore ban-concurrent-index-creation-in-transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_email_lower_key" ON "users"(lower("email"));

RESET statement_timeout;

RESET lock_timeout;
