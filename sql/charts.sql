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
-- One bounded batch of expired chart rows, oldest first through chart_cache_expiresAt_idx, from
-- $2 on (the last expiry of the previous batch; NULL: the start): the rows earlier batches deleted stay in
-- the index until vacuum, and starting after them spares each batch a walk over all of them. Rows are
-- deleted by ctid (locked, so they cannot move): no second index lookup. SKIP LOCKED lets several
-- instances sweep at once without waiting on each other.
WITH swept AS (
    DELETE FROM chart_cache
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM chart_cache
        WHERE "expiresAt" <= (now() AT TIME ZONE 'UTC') AND "expiresAt" >= COALESCE($2::timestamp, '-infinity')
        ORDER BY "expiresAt"
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING "expiresAt"
)
SELECT count(*) AS count, max("expiresAt") AS last FROM swept

-- name: sweep_expired_charts_in_blocks
-- One bounded batch of the expired chart rows stored in heap blocks [$2, $3) (a TID range scan): the
-- physical-order pass of a big backlog (service/data/sweeps.py), which dirties each page once however the
-- expiries are spread over the table. (+ interval '0': an expression no index holds, so the window is
-- read by the TID range scan, never by a walk of the expiry index filtered on ctid.)
WITH swept AS (
    DELETE FROM chart_cache
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM chart_cache
        WHERE ctid >= $2::tid AND ctid < $3::tid AND "expiresAt" + interval '0' <= (now() AT TIME ZONE 'UTC')
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING 1
)
SELECT count(*) FROM swept

-- name: expired_charts
-- The rows the sweep would delete; only planned (EXPLAIN), never run: the backlog's size in the planner's
-- estimate decides whether the sweep goes in physical order.
SELECT 1 FROM chart_cache WHERE "expiresAt" <= (now() AT TIME ZONE 'UTC')
