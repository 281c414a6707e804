-- 0050 reporting views (service-owned): what the read-only role reads, without the secrets.
-- Why: reporting and support need the data but never password hashes, session or verification
-- tokens, OAuth tokens or Stripe payloads. Each view lists its columns, so a column added to a table
-- later stays hidden until it is added here on purpose. sql/admin/roles.sql gives the read-only role
-- SELECT on this schema only (and puts it first on that role's search_path), nothing in public.
-- The schema may already exist (roles.sql creates it so it can grant on it); then it is used as it is,
-- without asking for CREATE on the database (which the owner role does not need otherwise).
-- depends: 0010_stripe_events 0013_sessions_accounts_user_id_indexes

-- A short lock_timeout: creating a view takes no lock on its tables beyond reading the catalog.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

DO $$
BEGIN
    IF to_regnamespace('reporting') IS NULL THEN
        CREATE SCHEMA "reporting";
    END IF;
END;
$$;

CREATE VIEW "reporting"."users" AS
    SELECT "id", "email", "emailVerified", "name", "image", "role", "createdAt", "updatedAt"
    FROM "public"."users";

CREATE VIEW "reporting"."accounts" AS
    SELECT "id", "userId", "type", "provider", "providerAccountId", "expires_at", "token_type", "scope"
    FROM "public"."accounts";

CREATE VIEW "reporting"."sessions" AS
    SELECT "id", "userId", "expires" FROM "public"."sessions";

CREATE VIEW "reporting"."verification_tokens" AS
    SELECT "identifier", "expires" FROM "public"."verification_tokens";

CREATE VIEW "reporting"."subscriptions" AS
    SELECT "id", "userId", "stripeCustomerId", "stripeSubscriptionId", "stripePriceId", "status",
           "currentPeriodEnd", "cancelAtPeriodEnd", "createdAt", "updatedAt"
    FROM "public"."subscriptions";

CREATE VIEW "reporting"."natal_data" AS
    SELECT "id", "userId", "birthDate", "location", "latitude", "longitude", "timezone", "createdAt", "updatedAt"
    FROM "public"."natal_data";

CREATE VIEW "reporting"."chart_cache" AS
    SELECT "id", "userId", "chartType", "chartData", "interpretation", "createdAt", "expiresAt"
    FROM "public"."chart_cache";

CREATE VIEW "reporting"."stripe_events" AS
    SELECT "id", "type", "created", "stripeSubscriptionId", "stripeCustomerId", "receivedAt", "appliedAt"
    FROM "public"."stripe_events";
