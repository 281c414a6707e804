-- Rollback of 0007: drops "natal_data".

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';
DROP TABLE "natal_data";
