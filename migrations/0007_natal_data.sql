-- 0007 natal_data: a user's birth data (Prisma model NatalData), one row per user.
-- Why: charts are computed from it. Coordinates are DOUBLE PRECISION (Prisma's Float).
-- depends: 0002_users

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';

CREATE TABLE "natal_data" (
    "id" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "birthDate" TIMESTAMP(3) NOT NULL,
    "location" TEXT NOT NULL,
    "latitude" DOUBLE PRECISION,
    "longitude" DOUBLE PRECISION,
    "timezone" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "natal_data_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "natal_data_userId_key" ON "natal_data"("userId");

ALTER TABLE "natal_data" ADD CONSTRAINT "natal_data_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;
