-- Auth.js e-mail sign-in tokens (table "verification_tokens").

-- name: insert_verification_token
INSERT INTO verification_tokens (identifier, token, expires) VALUES ($1, $2, $3)
RETURNING identifier, token, expires

-- name: use_verification_token
-- Deleted and returned in one statement: a token is used at most once, however many callers race.
-- The token alone is unique (verification_tokens_token_key); the identifier, when given, must match.
DELETE FROM verification_tokens WHERE token = $2 AND ($1::text IS NULL OR identifier = $1)
RETURNING identifier, token, expires
