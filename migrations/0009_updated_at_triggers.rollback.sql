-- Rollback of 0009: removes the updatedAt triggers and their function (writers must set it again).

-- A short lock_timeout: while this waits for a lock, every session behind it waits too, so give up
-- fast; `migrate` retries with backoff for up to MIGRATE_LOCK_WAIT and then names the blocker.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';
DROP TRIGGER "natal_data_set_updated_at" ON "natal_data";

DROP TRIGGER "subscriptions_set_updated_at" ON "subscriptions";

DROP TRIGGER "users_set_updated_at" ON "users";

DROP FUNCTION "set_updated_at"();
