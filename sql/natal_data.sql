-- Birth data (table "natal_data"), one row per user.

-- name: insert_natal_data
INSERT INTO natal_data (id, "userId", "birthDate", location, latitude, longitude, timezone)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, "userId", "birthDate", location, latitude, longitude, timezone, "createdAt", "updatedAt"

-- name: upsert_natal_data
INSERT INTO natal_data (id, "userId", "birthDate", location, latitude, longitude, timezone)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT ("userId") DO UPDATE SET
    "birthDate" = EXCLUDED."birthDate",
    location = EXCLUDED.location,
    latitude = EXCLUDED.latitude,
    longitude = EXCLUDED.longitude,
    timezone = EXCLUDED.timezone
RETURNING id, "userId", "birthDate", location, latitude, longitude, timezone, "createdAt", "updatedAt",
          (xmax = 0) AS inserted

-- name: get_natal_data_by_user
SELECT id, "userId", "birthDate", location, latitude, longitude, timezone, "createdAt", "updatedAt"
FROM natal_data WHERE "userId" = $1

-- name: delete_natal_data_by_user
DELETE FROM natal_data WHERE "userId" = $1
