-- Rollback of 0014: drops the added columns (the webhook of before 0014 does not read them).

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

DROP TABLE "stripe_sync_progress";

-- The columns exist only for the service of 0014 and later; dropping them is what a rollback is for.
-- squawk-ignore ban-drop-column
ALTER TABLE "subscriptions" DROP COLUMN "cancelAt";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_events" DROP COLUMN "reason";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_events" DROP COLUMN "outcome";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_subscription_state" DROP COLUMN "source";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_subscription_state" DROP COLUMN "subscriptionCreated";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_subscription_state" DROP COLUMN "cancelAt";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_subscription_state" DROP COLUMN "cancelAtPeriodEnd";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_subscription_state" DROP COLUMN "currentPeriodEnd";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_subscription_state" DROP COLUMN "stripePriceId";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_subscription_state" DROP COLUMN "previous";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_subscription_state" DROP COLUMN "eventType";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_subscription_state" DROP COLUMN "status";

-- squawk-ignore ban-drop-column
ALTER TABLE "stripe_subscription_state" DROP COLUMN "stripeCustomerId";
