-- Rollback of 0001: drops the enum types (every table using them has been dropped by then).

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';
DROP TYPE "ChartType";

DROP TYPE "SubscriptionStatus";

DROP TYPE "Role";
