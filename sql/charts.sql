-- Chart cache (table "chart_cache"). "Now" is UTC: TIMESTAMP(3) columns hold UTC (Prisma's convention).
-- An expired row is never returned, whether or not the sweep has deleted it yet.

-- name: insert_chart
INSERT INTO chart_cache (id, "userId", "chartType", "chartData", interpretation, "expiresAt")
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, "userId", "chartType", "chartData", interpretation, "createdAt", "expiresAt"

-- name: get_chart_by_id
SELECT id, "userId", "chartType", "chartData", interpretation, "createdAt", "expiresAt"
FROM chart_cache
WHERE id = $1 AND "expiresAt" > (now() AT TIME ZONE 'UTC')

-- name: get_chart_by_pair
-- The newest unexpired entry; served by chart_cache_userId_chartType_idx.
SELECT id, "userId", "chartType", "chartData", interpretation, "createdAt", "expiresAt"
FROM chart_cache
WHERE "userId" = $1 AND "chartType" = $2 AND "expiresAt" > (now() AT TIME ZONE 'UTC')
ORDER BY "createdAt" DESC, id DESC
LIMIT 1

-- name: delete_charts_of_user
-- $2 NULL: every chart type of the user.
DELETE FROM chart_cache
WHERE "userId" = $1 AND ($2::"ChartType" IS NULL OR "chartType" = $2::"ChartType")

-- name: sweep_expired_charts
-- One bounded batch, oldest first through chart_cache_expiresAt_idx. Each batch is its own short
-- transaction; SKIP LOCKED lets several instances sweep at once without waiting on each other.
DELETE FROM chart_cache
WHERE id = ANY (ARRAY(
    SELECT id FROM chart_cache
    WHERE "expiresAt" <= (now() AT TIME ZONE 'UTC')
    ORDER BY "expiresAt"
    LIMIT $1
    FOR UPDATE SKIP LOCKED
))
