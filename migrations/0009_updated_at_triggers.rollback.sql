-- Rollback of 0009: removes the updatedAt triggers and their function (writers must set it again).

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';
DROP TRIGGER "natal_data_set_updated_at" ON "natal_data";

DROP TRIGGER "subscriptions_set_updated_at" ON "subscriptions";

DROP TRIGGER "users_set_updated_at" ON "users";

DROP FUNCTION "set_updated_at"();
