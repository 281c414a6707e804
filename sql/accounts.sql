-- OAuth accounts (table "accounts"), Auth.js adapter's linkAccount / getUserByAccount / unlinkAccount.

-- name: insert_account
INSERT INTO accounts (id, "userId", type, provider, "providerAccountId", refresh_token, access_token,
                      expires_at, token_type, scope, id_token, session_state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING id, "userId", type, provider, "providerAccountId", refresh_token, access_token, expires_at,
          token_type, scope, id_token, session_state

-- name: get_account
SELECT id, "userId", type, provider, "providerAccountId", refresh_token, access_token, expires_at,
       token_type, scope, id_token, session_state
FROM accounts WHERE provider = $1 AND "providerAccountId" = $2

-- name: delete_account
DELETE FROM accounts WHERE provider = $1 AND "providerAccountId" = $2 RETURNING "userId"

-- name: update_account_tokens
-- Refresh-token rotation: each column is replaced only when its "set" flag is true, so a PATCH that
-- leaves a field out keeps it, and one that sends null clears it.
UPDATE accounts SET
    access_token = CASE WHEN $3::bool THEN $4 ELSE access_token END,
    refresh_token = CASE WHEN $5::bool THEN $6 ELSE refresh_token END,
    expires_at = CASE WHEN $7::bool THEN $8::integer ELSE expires_at END,
    token_type = CASE WHEN $9::bool THEN $10 ELSE token_type END,
    scope = CASE WHEN $11::bool THEN $12 ELSE scope END,
    id_token = CASE WHEN $13::bool THEN $14 ELSE id_token END,
    session_state = CASE WHEN $15::bool THEN $16 ELSE session_state END
WHERE provider = $1 AND "providerAccountId" = $2
RETURNING id, "userId", type, provider, "providerAccountId", refresh_token, access_token, expires_at,
          token_type, scope, id_token, session_state
