-- Least-privilege roles for one database. Reviewed like a migration; run once by a DBA (a superuser or
-- a role with CREATEROLE that owns the database), before the first `migrate`:
--
--   psql "$ADMIN_URL" -v ON_ERROR_STOP=1 \
--        -v owner_role=aw_owner -v app_role=aw_app -v readonly_role=aw_readonly \
--        -v owner_password="$OWNER_PW" -v app_password="$APP_PW" -v readonly_password="$RO_PW" \
--        -f sql/admin/roles.sql
--
-- owner_role:    runs `python -m service migrate`; owns every table, type and function.
-- app_role:      what the service connects as: SELECT/INSERT/UPDATE/DELETE on the service's tables, no DDL.
-- readonly_role: reporting and support: SELECT only.
-- Privileges on future tables come from ALTER DEFAULT PRIVILEGES, so the grants follow new migrations.

CREATE ROLE :"owner_role" LOGIN PASSWORD :'owner_password';
CREATE ROLE :"app_role" LOGIN PASSWORD :'app_password';
CREATE ROLE :"readonly_role" LOGIN PASSWORD :'readonly_password';

-- Nobody else creates objects in the schema (PostgreSQL 15+ already revokes this from PUBLIC).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"owner_role";
GRANT USAGE ON SCHEMA public TO :"app_role", :"readonly_role";

-- Tables, types and functions the owner creates from now on.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT SELECT ON TABLES TO :"readonly_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner_role" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";

-- Tables that already exist (a database adopted from the old platform) get the same grants. Their
-- ownership moves to the owner role with `REASSIGN OWNED BY <old owner> TO <owner_role>;`, run by the DBA.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"readonly_role";

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
