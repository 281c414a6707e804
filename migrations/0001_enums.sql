-- 0001 enums: the three enum types of the seed schema (Prisma's Role, SubscriptionStatus, ChartType).
-- Why: the seed's tables use them; names are quoted because Prisma keeps the model's PascalCase, and the
-- labels are in the order the Prisma schema lists them (enum comparison and sorting follow that order).

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';

CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN');

CREATE TYPE "SubscriptionStatus" AS ENUM ('INACTIVE', 'ACTIVE', 'CANCELLED', 'PAST_DUE', 'TRIALING');

CREATE TYPE "ChartType" AS ENUM ('TROPICAL', 'DRACONIC', 'HORARY', 'SYNASTRY', 'PROGRESSED', 'SOLAR_RETURN');
