-- WebAuthn authenticators (table "authenticators"), Auth.js adapter's createAuthenticator,
-- getAuthenticator, listAuthenticatorsByUserId and updateAuthenticatorCounter.

-- name: insert_authenticator
INSERT INTO authenticators ("credentialID", "userId", "providerAccountId", "credentialPublicKey", counter,
                            "credentialDeviceType", "credentialBackedUp", transports)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING "credentialID", "userId", "providerAccountId", "credentialPublicKey", counter,
          "credentialDeviceType", "credentialBackedUp", transports

-- name: get_authenticator
SELECT "credentialID", "userId", "providerAccountId", "credentialPublicKey", counter,
       "credentialDeviceType", "credentialBackedUp", transports
FROM authenticators WHERE "credentialID" = $1

-- name: update_authenticator_counter
UPDATE authenticators SET counter = $2 WHERE "credentialID" = $1
RETURNING "credentialID", "userId", "providerAccountId", "credentialPublicKey", counter,
          "credentialDeviceType", "credentialBackedUp", transports
