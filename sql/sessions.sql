-- Auth.js database sessions (table "sessions").

-- name: insert_session
INSERT INTO sessions (id, "sessionToken", "userId", expires)
VALUES ($1, $2, $3, $4)
RETURNING id, "sessionToken", "userId", expires

-- name: lookup_session
-- Session and user in one query (every page view of the web app calls this).
SELECT s.id, s."sessionToken", s."userId", s.expires,
       u.id AS u_id, u.email AS u_email, u."emailVerified" AS u_email_verified, u.name AS u_name,
       u.image AS u_image, u.role AS u_role, u."createdAt" AS u_created_at, u."updatedAt" AS u_updated_at
FROM sessions s JOIN users u ON u.id = s."userId"
WHERE s."sessionToken" = $1

-- name: update_session
UPDATE sessions SET expires = $2 WHERE "sessionToken" = $1
RETURNING id, "sessionToken", "userId", expires

-- name: delete_session
DELETE FROM sessions WHERE "sessionToken" = $1
RETURNING id, "sessionToken", "userId", expires

-- name: sweep_expired_sessions
-- One bounded batch of expired sessions, oldest first through sessions_expires_idx (migration 0033), from
-- $2 on (the last expiry of the previous batch; NULL: the start): the rows earlier batches deleted stay in
-- the index until vacuum, and starting after them spares each batch a walk over all of them. Rows are
-- deleted by ctid (locked, so they cannot move): no second index lookup. SKIP LOCKED lets several
-- instances sweep at once without waiting on each other.
WITH swept AS (
    DELETE FROM sessions
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM sessions
        WHERE expires <= (now() AT TIME ZONE 'UTC') AND expires >= COALESCE($2::timestamp, '-infinity')
        ORDER BY expires
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING expires
)
SELECT count(*) AS count, max(expires) AS last FROM swept

-- name: sweep_expired_sessions_in_blocks
-- One bounded batch of the expired sessions stored in heap blocks [$2, $3) (a TID range scan): the
-- physical-order pass of a big backlog (service/data/sweeps.py), which dirties each page once however the
-- expiries are spread over the table. (+ interval '0': an expression no index holds, so the window is
-- read by the TID range scan, never by a walk of the expiry index filtered on ctid.)
WITH swept AS (
    DELETE FROM sessions
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM sessions
        WHERE ctid >= $2::tid AND ctid < $3::tid AND expires + interval '0' <= (now() AT TIME ZONE 'UTC')
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING 1
)
SELECT count(*) FROM swept

-- name: expired_sessions
-- The rows the sweep would delete; only planned (EXPLAIN), never run: the backlog's size in the planner's
-- estimate decides whether the sweep goes in physical order.
SELECT 1 FROM sessions WHERE expires <= (now() AT TIME ZONE 'UTC')
