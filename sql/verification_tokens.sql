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
-- One bounded batch of expired sign-in tokens, oldest first through verification_tokens_expires_idx (migration 0033), from
-- $2 on (the last expiry of the previous batch; NULL: the start): the rows earlier batches deleted stay in
-- the index until vacuum, and starting after them spares each batch a walk over all of them. Rows are
-- deleted by ctid (locked, so they cannot move): no second index lookup. SKIP LOCKED lets several
-- instances sweep at once without waiting on each other.
WITH swept AS (
    DELETE FROM verification_tokens
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM verification_tokens
        WHERE expires <= (now() AT TIME ZONE 'UTC') AND expires >= COALESCE($2::timestamp, '-infinity')
        ORDER BY expires
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING expires
)
SELECT count(*) AS count, max(expires) AS last FROM swept

-- name: sweep_expired_verification_tokens_in_blocks
-- One bounded batch of the expired sign-in tokens stored in heap blocks [$2, $3) (a TID range scan): the
-- physical-order pass of a big backlog (service/data/sweeps.py), which dirties each page once however the
-- expiries are spread over the table. (+ interval '0': an expression no index holds, so the window is
-- read by the TID range scan, never by a walk of the expiry index filtered on ctid.)
WITH swept AS (
    DELETE FROM verification_tokens
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM verification_tokens
        WHERE ctid >= $2::tid AND ctid < $3::tid AND expires + interval '0' <= (now() AT TIME ZONE 'UTC')
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING 1
)
SELECT count(*) FROM swept

-- name: expired_verification_tokens
-- The rows the sweep would delete; only planned (EXPLAIN), never run: the backlog's size in the planner's
-- estimate decides whether the sweep goes in physical order.
SELECT 1 FROM verification_tokens WHERE expires <= (now() AT TIME ZONE 'UTC')
