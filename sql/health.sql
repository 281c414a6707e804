-- Readiness.

-- name: ping
SELECT 1
