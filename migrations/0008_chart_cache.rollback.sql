-- Rollback of 0008: drops "chart_cache".

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';
DROP TABLE "chart_cache";
