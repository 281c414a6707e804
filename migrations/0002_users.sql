-- 0002 users: the platform's people (Prisma model User, table "users").
-- Why: every other seed table hangs off a user. Columns, types, defaults and constraint names are
-- exactly what Prisma creates, so a database made by the old platform can be adopted unchanged.
-- "updatedAt" has no default, as in Prisma; migration 0009 adds the trigger that fills it in.
-- depends: 0001_enums

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';

CREATE TABLE "users" (
    "id" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "emailVerified" TIMESTAMP(3),
    "name" TEXT,
    "password" TEXT,
    "image" TEXT,
    "role" "Role" NOT NULL DEFAULT 'USER',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
);

-- One account per e-mail address; the service stores it trimmed and lower-cased.
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");
