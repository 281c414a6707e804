-- 0040 authenticators: WebAuthn (passkey) credentials of a user (service-owned; Auth.js's Authenticator
-- model as its Prisma schema has it: primary key ("userId", "credentialID"), "credentialID" unique).
-- Why: Auth.js's WebAuthn provider stores each passkey through the adapter's createAuthenticator /
-- getAuthenticator / listAuthenticatorsByUserId / updateAuthenticatorCounter. A new, empty table, so
-- the unique constraint's index is built here without blocking anyone.
-- depends: 0013_sessions_accounts_user_id_indexes

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

CREATE TABLE "authenticators" (
    "credentialID" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "providerAccountId" TEXT NOT NULL,
    "credentialPublicKey" TEXT NOT NULL,
    "counter" INTEGER NOT NULL,
    "credentialDeviceType" TEXT NOT NULL,
    "credentialBackedUp" BOOLEAN NOT NULL,
    "transports" TEXT,

    -- userId first: listing a user's authenticators is a range scan of this index.
    CONSTRAINT "authenticators_pkey" PRIMARY KEY ("userId", "credentialID"),
    -- A credential belongs to one user only; getAuthenticator finds it by credentialID alone.
    CONSTRAINT "authenticators_credentialID_key" UNIQUE ("credentialID"),
    -- Deleting a user takes their passkeys with them.
    CONSTRAINT "authenticators_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users"("id")
        ON DELETE CASCADE ON UPDATE CASCADE
);
