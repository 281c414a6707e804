-- Rollback of 0034: back to the server's autovacuum defaults for both tables.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

ALTER TABLE "chart_cache" RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_limit);

ALTER TABLE "sessions" RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_limit);
