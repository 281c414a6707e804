-- Rollback of 0035: back to the default statistics target, and the e-mail prefix index dropped without
-- blocking writes.
SET lock_timeout = '2s';

SET statement_timeout = '30min';

ALTER TABLE "users" ALTER COLUMN "email" SET STATISTICS -1, ALTER COLUMN "name" SET STATISTICS -1;

DROP INDEX CONCURRENTLY IF EXISTS "users_email_lower_pattern_idx";

RESET statement_timeout;

RESET lock_timeout;
