-- 0008 chart_cache: computed charts kept until "expiresAt" (Prisma model ChartCache).
-- Why: charts are expensive to compute. "userId" is a plain column with no foreign key (the seed has no
-- relation here), so deleting a user leaves their cached charts to expire. The two indexes serve the
-- lookup by (user, chart type) and the sweep of expired rows.
-- depends: 0001_enums

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';

CREATE TABLE "chart_cache" (
    "id" TEXT NOT NULL,
    "userId" TEXT,
    "chartType" "ChartType" NOT NULL,
    "chartData" JSONB NOT NULL,
    "interpretation" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "chart_cache_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "chart_cache_userId_chartType_idx" ON "chart_cache"("userId", "chartType");

CREATE INDEX "chart_cache_expiresAt_idx" ON "chart_cache"("expiresAt");
