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
