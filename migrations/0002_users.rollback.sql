-- Rollback of 0002: drops "users" (its dependants are dropped by the later rollbacks first).

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';
DROP TABLE "users";
