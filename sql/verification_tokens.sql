-- Auth.js e-mail sign-in tokens (table "verification_tokens").

-- name: insert_verification_token
INSERT INTO verification_tokens (identifier, token, expires) VALUES ($1, $2, $3)
RETURNING identifier, token, expires

-- name: use_verification_token
-- Deleted and returned in one statement: a token is used at most once, however many callers race.
-- The token alone is unique (verification_tokens_token_key); the identifier, when given, must match.
DELETE FROM verification_tokens WHERE token = $2 AND ($1::text IS NULL OR identifier = $1)
RETURNING identifier, token, expires

-- name: sweep_expired_verification_tokens
-- One bounded batch of expired sign-in tokens (used ones are deleted when used), oldest first through
-- verification_tokens_expires_idx (migration 0033). The table has no primary key; token is unique.
DELETE FROM verification_tokens
WHERE token = ANY (ARRAY(
    SELECT token FROM verification_tokens
    WHERE expires <= (now() AT TIME ZONE 'UTC')
    ORDER BY expires
    LIMIT $1
    FOR UPDATE SKIP LOCKED
))
