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

-- name: account_tokens_after
-- `python -m service reencrypt`: one batch of accounts in id order, after the last one done.
SELECT id, access_token, refresh_token, id_token
FROM accounts WHERE id > $1 ORDER BY id LIMIT $2

-- name: rewrite_account_tokens
-- One batch of re-encrypted tokens. Each field is replaced only if it still holds the value that was
-- read ($2/$4/$6 old, $3/$5/$7 new): a token changed meanwhile by the service is left as it is.
UPDATE accounts AS a SET
    access_token = CASE WHEN a.access_token IS NOT DISTINCT FROM v.old_access THEN v.new_access ELSE a.access_token END,
    refresh_token = CASE WHEN a.refresh_token IS NOT DISTINCT FROM v.old_refresh THEN v.new_refresh ELSE a.refresh_token END,
    id_token = CASE WHEN a.id_token IS NOT DISTINCT FROM v.old_id THEN v.new_id ELSE a.id_token END
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
    AS v(id, old_access, new_access, old_refresh, new_refresh, old_id, new_id)
WHERE a.id = v.id
