-- Users (table "users"). The password hash is read only by get_password_hash; no other statement
-- returns it.

-- name: insert_user
INSERT INTO users (id, email, name, image, password, "emailVerified", role)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, email, "emailVerified", name, image, role, "createdAt", "updatedAt"

-- name: insert_users_batch
-- One statement for the whole batch: the arrays are unnested into rows.
INSERT INTO users (id, email, name, image, password, "emailVerified", role)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamp[], $7::"Role"[])

-- name: insert_users_batch_skip_duplicates
INSERT INTO users (id, email, name, image, password, "emailVerified", role)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamp[], $7::"Role"[])
ON CONFLICT DO NOTHING

-- name: get_user_by_id
SELECT id, email, "emailVerified", name, image, role, "createdAt", "updatedAt"
FROM users WHERE id = $1

-- name: get_user_by_email
-- lower(email): rows written by the old platform may not be lower-cased (index users_email_lower_idx).
SELECT id, email, "emailVerified", name, image, role, "createdAt", "updatedAt"
FROM users WHERE lower(email) = lower($1)
ORDER BY email = $1 DESC
LIMIT 1

-- name: get_user_by_account
SELECT u.id, u.email, u."emailVerified", u.name, u.image, u.role, u."createdAt", u."updatedAt"
FROM accounts a JOIN users u ON u.id = a."userId"
WHERE a.provider = $1 AND a."providerAccountId" = $2

-- name: get_user_with_relations
-- One round trip: the user, and (when asked by $2..$4) the subscription, natal data and accounts.
SELECT u.id, u.email, u."emailVerified", u.name, u.image, u.role, u."createdAt", u."updatedAt",
       CASE WHEN $2::boolean THEN (
           SELECT s FROM subscriptions s WHERE s."userId" = u.id) END AS subscription,
       CASE WHEN $3::boolean THEN (
           SELECT n FROM natal_data n WHERE n."userId" = u.id) END AS "natalData",
       CASE WHEN $4::boolean THEN array(
           SELECT a FROM accounts a WHERE a."userId" = u.id ORDER BY a.provider, a."providerAccountId") END AS accounts
FROM users u WHERE u.id = $1

-- name: update_user
-- Each field changes only when its flag is true, so one statement serves every PATCH. A new e-mail
-- address is not verified: "emailVerified" is cleared unless the same PATCH sets it (the right-hand
-- sides see the row as it was).
UPDATE users SET
    email = CASE WHEN $2::boolean THEN $3 ELSE email END,
    name = CASE WHEN $4::boolean THEN $5 ELSE name END,
    image = CASE WHEN $6::boolean THEN $7 ELSE image END,
    "emailVerified" = CASE WHEN $8::boolean THEN $9
                           WHEN $2::boolean AND lower($3) IS DISTINCT FROM lower(email) THEN NULL
                           ELSE "emailVerified" END,
    role = CASE WHEN $10::boolean THEN $11::"Role" ELSE role END
WHERE id = $1
RETURNING id, email, "emailVerified", name, image, role, "createdAt", "updatedAt"

-- name: get_user_email_for_update
SELECT email FROM users WHERE id = $1 FOR UPDATE

-- name: set_password
UPDATE users SET password = $2 WHERE id = $1

-- name: delete_sessions_but
-- After a password change: every session of the user but the one named by $2 (NULL: all of them).
DELETE FROM sessions WHERE "userId" = $1 AND "sessionToken" IS DISTINCT FROM $2
RETURNING "sessionToken"

-- name: get_password_hash
SELECT password FROM users WHERE id = $1

-- name: delete_user
-- The user's charts go in the same statement: chart_cache has no foreign key (the seed's contract lets a
-- chart name any userId), so the cascade of the other tables does not reach it.
WITH deleted AS (
    DELETE FROM users WHERE id = $1 RETURNING id, email
), charts AS (
    DELETE FROM chart_cache WHERE "userId" IN (SELECT id FROM deleted)
)
SELECT email FROM deleted

-- name: delete_user_sessions
DELETE FROM sessions WHERE "userId" = $1 RETURNING "sessionToken"

-- name: user_exists
SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)
