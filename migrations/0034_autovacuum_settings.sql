-- 0034 per-table autovacuum settings for chart_cache and sessions (service-owned).
-- Why: both tables lose rows all the time to the sweeps. With the defaults (vacuum at 20% dead rows)
-- the 2M-row chart cache kept 42% dead rows and vacuumed in rare, huge passes (2.3 GB of WAL); vacuuming
-- at 2% dead rows (or after 10,000 deleted/inserted rows) keeps each pass small and the space reusable.
-- The cost limit lets a pass finish between two sweeps without saturating the disk.
-- SET (storage parameters) takes a SHARE UPDATE EXCLUSIVE lock: reads and writes go on.
-- depends: 0008_chart_cache 0004_sessions

SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

ALTER TABLE "chart_cache" SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 1000);

ALTER TABLE "sessions" SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_limit = 1000);
