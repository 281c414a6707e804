-- Rollback of 0050: drops the reporting views. The schema stays (sql/admin/roles.sql may have created
-- it and granted on it); an empty schema holds no data.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

DROP VIEW "reporting"."stripe_events";

DROP VIEW "reporting"."chart_cache";

DROP VIEW "reporting"."natal_data";

DROP VIEW "reporting"."subscriptions";

DROP VIEW "reporting"."verification_tokens";

DROP VIEW "reporting"."sessions";

DROP VIEW "reporting"."accounts";

DROP VIEW "reporting"."users";
