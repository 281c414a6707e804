-- 0005 verification_tokens: e-mail sign-in tokens of Auth.js (Prisma model VerificationToken).
-- Why: single-use tokens. The seed model has no @id, so the table has no primary key, only the two
-- unique indexes Prisma creates (token alone, and the (identifier, token) pair Auth.js looks up by).

-- Fail fast rather than queue behind a long transaction while blocking every query behind us.
SET LOCAL lock_timeout = '10s';

SET LOCAL statement_timeout = '60s';

CREATE TABLE "verification_tokens" (
    "identifier" TEXT NOT NULL,
    "token" TEXT NOT NULL,
    "expires" TIMESTAMP(3) NOT NULL
);

CREATE UNIQUE INDEX "verification_tokens_token_key" ON "verification_tokens"("token");

CREATE UNIQUE INDEX "verification_tokens_identifier_token_key" ON "verification_tokens"("identifier", "token");
