-- Subscriptions (table "subscriptions"), one per user, kept in sync with Stripe.

-- name: insert_subscription
INSERT INTO subscriptions (id, "userId", "stripeCustomerId", "stripeSubscriptionId", "stripePriceId",
                           status, "currentPeriodEnd", "cancelAtPeriodEnd")
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id, "userId", "stripeCustomerId", "stripeSubscriptionId", "stripePriceId", status,
          "currentPeriodEnd", "cancelAtPeriodEnd", "cancelAt", "createdAt", "updatedAt"

-- name: upsert_subscription
-- (xmax = 0) is true for a row this statement inserted, false for one it updated: 201 vs 200.
INSERT INTO subscriptions (id, "userId", "stripeCustomerId", "stripeSubscriptionId", "stripePriceId",
                           status, "currentPeriodEnd", "cancelAtPeriodEnd")
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT ("userId") DO UPDATE SET
    "stripeCustomerId" = EXCLUDED."stripeCustomerId",
    "stripeSubscriptionId" = EXCLUDED."stripeSubscriptionId",
    "stripePriceId" = EXCLUDED."stripePriceId",
    status = EXCLUDED.status,
    "currentPeriodEnd" = EXCLUDED."currentPeriodEnd",
    "cancelAtPeriodEnd" = EXCLUDED."cancelAtPeriodEnd"
RETURNING id, "userId", "stripeCustomerId", "stripeSubscriptionId", "stripePriceId", status,
          "currentPeriodEnd", "cancelAtPeriodEnd", "cancelAt", "createdAt", "updatedAt", (xmax = 0) AS inserted

-- name: get_subscription_by_user
SELECT id, "userId", "stripeCustomerId", "stripeSubscriptionId", "stripePriceId", status,
       "currentPeriodEnd", "cancelAtPeriodEnd", "cancelAt", "createdAt", "updatedAt"
FROM subscriptions WHERE "userId" = $1
