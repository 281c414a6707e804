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
-- One bounded batch of expired sessions, oldest first through sessions_expires_idx (migration 0033);
-- SKIP LOCKED lets several instances sweep at once without waiting on each other.
DELETE FROM sessions
WHERE id = ANY (ARRAY(
    SELECT id FROM sessions
    WHERE expires <= (now() AT TIME ZONE 'UTC')
    ORDER BY expires
    LIMIT $1
    FOR UPDATE SKIP LOCKED
))
