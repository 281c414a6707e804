-- Rollback of 0040: drops "authenticators" with its constraints (and every stored passkey).

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';
DROP TABLE "authenticators";
