-- Least-privilege roles for one database. Reviewed like a migration; run by a DBA (a superuser, or a
-- role with CREATEROLE that owns the database) before the first `migrate`, and again whenever you like:
-- every statement is safe to repeat (roles and grants are brought to the state below, passwords reset).
--
--   psql "$ADMIN_URL" -v ON_ERROR_STOP=1 \
--        -v owner_role=aw_owner -v app_role=aw_app -v readonly_role=aw_readonly \
--        -v owner_password="$OWNER_PW" -v app_password="$APP_PW" -v readonly_password="$RO_PW" \
--        -f sql/admin/roles.sql
--
-- owner_role:    runs `python -m service migrate`; owns every table, type, function and view.
-- app_role:      what the service connects as: SELECT/INSERT/UPDATE/DELETE on the service's tables, no DDL,
--                nothing on migrate's bookkeeping tables, no temporary tables.
-- readonly_role: reporting and support: SELECT on the views of schema "reporting" only (migration 0050),
--                which leave out password hashes, session/verification/OAuth tokens and Stripe payloads.
-- Optional: -v migrate_role=NAME when migrations are run by a role other than owner_role (its new
-- tables get the same grants). Timeouts below are per role, in this database only.

\if :{?migrate_role}
\else
\set migrate_role :owner_role
\endif

-- Roles: created when missing, password (re)set every time.
SELECT format('CREATE ROLE %I LOGIN', name) FROM (VALUES (:'owner_role'), (:'app_role'), (:'readonly_role')) AS r(name)
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) \gexec
ALTER ROLE :"owner_role" LOGIN PASSWORD :'owner_password';
ALTER ROLE :"app_role" LOGIN PASSWORD :'app_password';
ALTER ROLE :"readonly_role" LOGIN PASSWORD :'readonly_password';

-- The database runs in UTC, so Prisma's CURRENT_TIMESTAMP defaults (TIMESTAMP(3) columns) agree with
-- the service, which writes UTC. No temporary tables for anyone not granted them (PUBLIC had TEMP).
SELECT format('ALTER DATABASE %I SET timezone = %L', current_database(), 'UTC') \gexec
SELECT format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database()) \gexec
SELECT format('GRANT TEMPORARY ON DATABASE %I TO %I', current_database(), :'owner_role') \gexec

-- Role-level timeouts, in this database. The app's statements are short; a stuck one must not hold
-- locks, and a session idle inside a transaction (a crashed client) must not block vacuum or DDL.
SELECT format('ALTER ROLE %I IN DATABASE %I SET %s = %L', role, current_database(), setting, value)
FROM (VALUES
    (:'app_role', 'statement_timeout', '15s'),
    (:'app_role', 'lock_timeout', '5s'),
    (:'app_role', 'idle_in_transaction_session_timeout', '60s'),
    (:'readonly_role', 'statement_timeout', '10min'),
    (:'readonly_role', 'lock_timeout', '5s'),
    (:'readonly_role', 'idle_in_transaction_session_timeout', '10min'),
    (:'readonly_role', 'search_path', 'reporting'),
    (:'owner_role', 'idle_in_transaction_session_timeout', '10min')
) AS s(role, setting, value) \gexec

-- Nobody else creates objects in the schema (PostgreSQL 15+ already revokes this from PUBLIC).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner_role";
GRANT USAGE ON SCHEMA public TO :"app_role";
REVOKE ALL ON SCHEMA public FROM :"readonly_role";

-- The reporting schema (its views come with migration 0050), created here so it can be granted on.
CREATE SCHEMA IF NOT EXISTS reporting AUTHORIZATION :"owner_role";
REVOKE ALL ON SCHEMA reporting FROM PUBLIC;
GRANT USAGE ON SCHEMA reporting TO :"readonly_role";

-- Tables, sequences and views the migrating role creates from now on.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    REVOKE SELECT ON TABLES FROM :"readonly_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA reporting
    GRANT SELECT ON TABLES TO :"readonly_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrate_role" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrate_role" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migrate_role" IN SCHEMA reporting
    GRANT SELECT ON TABLES TO :"readonly_role";

-- What already exists (a database adopted from the old platform, or a re-run after migrations). Its
-- ownership moves to the owner role with `REASSIGN OWNED BY <old owner> TO <owner_role>;`, run by the DBA.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"readonly_role";
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO :"readonly_role";

-- migrate's own bookkeeping is migrate's: the app may not mark migrations applied or break its lock
-- (`migrate` revokes the same on these tables when it creates them). It may read them: `doctor` and the
-- schema_migrations_* gauges report what is applied.
SELECT format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON %s FROM %I; '
              'REVOKE ALL ON %s FROM %I', t, :'app_role', t, :'readonly_role')
FROM unnest(ARRAY['_yoyo_migration', '_yoyo_log', '_yoyo_version', 'yoyo_lock', '_aw_migration_checksum']) AS t
WHERE to_regclass(format('public.%I', t)) IS NOT NULL \gexec

-- Extensions the migrations need (0030: pg_trgm for the e-mail/name search indexes). Creating one needs
-- CREATE on the database, which the owner role does not get; created here once, the migration's
-- CREATE EXTENSION IF NOT EXISTS finds it. Skipped where the server does not ship it (no contrib).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    END IF;
END
$$;
