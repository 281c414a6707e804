-- Operations: the background gauges of /metrics (service/ops_gauges.py) and `python -m service doctor`.

-- name: ops_stripe_backlog
-- Stored events that need something before they count: `pending` (their customer or user is not linked
-- yet, or Stripe's API was down) and `conflict` (ops must decide), with the oldest one's age. Served by
-- stripe_events_outcome_received_idx (0015).
SELECT count(*) FILTER (WHERE outcome = 'pending') AS pending,
       count(*) FILTER (WHERE outcome = 'conflict') AS conflict,
       coalesce(extract(epoch FROM (now() AT TIME ZONE 'UTC') - min("receivedAt")), 0)::float8 AS oldest_seconds
FROM stripe_events
WHERE outcome IN ('pending', 'conflict')

-- name: ops_replica_lag
-- On a standby: seconds since the last replayed transaction committed on the primary (grows while the
-- primary is idle too); on a primary: 0.
SELECT CASE WHEN pg_is_in_recovery()
            THEN coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
            ELSE 0 END::float8

-- name: doctor_server
-- On a connection opened without settings: the time zone is what every new session (Prisma's, a DBA's)
-- gets from the server, database and role defaults.
SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS version_num,
       current_user AS role, current_setting('TimeZone') AS time_zone,
       extract(epoch FROM clock_timestamp())::float8 AS now_epoch

-- name: doctor_role
-- What the connected role can do: superuser, create in the schema / database, own the tables.
SELECT r.rolname AS role, r.rolsuper AS superuser,
       has_schema_privilege(current_user, 'public', 'CREATE') AS can_create_in_schema,
       has_database_privilege(current_user, current_database(), 'CREATE') AS can_create_schema,
       EXISTS (SELECT 1 FROM pg_tables t WHERE t.schemaname = 'public' AND t.tableowner = current_user)
           AS owns_tables,
       -- NULL when there is no users table (nothing migrated): to_regclass, not a name that would fail
       has_table_privilege(current_user, to_regclass('public.users'), 'SELECT,INSERT,UPDATE,DELETE')
           AS can_use_users
FROM pg_roles r WHERE r.rolname = current_user

-- name: doctor_invalid_indexes
-- Indexes a failed CREATE INDEX CONCURRENTLY left behind: not used for reads, still slow down writes.
SELECT c.relname AS index_name, t.relname AS table_name
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT (i.indisvalid AND i.indisready) AND n.nspname = 'public'
ORDER BY 1

-- name: doctor_field_key_ids
-- Key ids of the encrypted OAuth tokens stored (values look like enc:v2:<kid>:<data>, or enc:v1:<kid>:<data>
-- as written before the associated data named the row).
SELECT DISTINCT split_part(v, ':', 3) AS kid
FROM accounts, unnest(ARRAY[access_token, refresh_token, id_token]) AS v
WHERE v LIKE 'enc:v1:%' OR v LIKE 'enc:v2:%'

-- name: sweep_start
-- A table's size in heap blocks (the sweeps' physical-order pass walks them in windows) and the time now.
SELECT (pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint)::bigint AS pages,
       (now() AT TIME ZONE 'UTC') AS started
