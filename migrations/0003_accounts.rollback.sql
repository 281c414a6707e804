-- Rollback of 0003: drops "accounts" with its index and foreign key.

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';
DROP TABLE "accounts";
