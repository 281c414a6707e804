import { createHash } from "node:crypto"

import { describe, expect, test } from "vitest"

import { adapter, inMinutes, randomUUID, uniqueEmail } from "./service.js"

/** As Auth.js stores them: a hash of the token sent by e-mail. */
function newToken() {
  return { identifier: uniqueEmail("magic"), expires: inMinutes(15),
           token: createHash("sha256").update(randomUUID()).digest("hex") }
}

describe("verification tokens", () => {
  test("createVerificationToken answers the token as given", async () => {
    const token = newToken()
    expect(await adapter.createVerificationToken!(token)).toEqual(token)
  })

  test("useVerificationToken answers the token once, then null", async () => {
    const token = newToken()
    await adapter.createVerificationToken!(token)
    const params = { identifier: token.identifier, token: token.token }
    expect(await adapter.useVerificationToken!(params)).toEqual(token)
    expect(await adapter.useVerificationToken!(params)).toBeNull()
  })

  test("a wrong identifier does not use the token", async () => {
    const token = newToken()
    await adapter.createVerificationToken!(token)
    expect(await adapter.useVerificationToken!({ identifier: uniqueEmail("other"), token: token.token })).toBeNull()
    expect(await adapter.useVerificationToken!({ identifier: token.identifier, token: token.token })).toEqual(token)
  })

  test("a sign-in link without its e-mail parameter uses the token by itself", async () => {
    const token = newToken()
    await adapter.createVerificationToken!(token)
    const used = await adapter.useVerificationToken!({ identifier: undefined as unknown as string,
                                                       token: token.token })
    expect(used).toEqual(token)
    expect(await adapter.useVerificationToken!({ identifier: token.identifier, token: token.token })).toBeNull()
  })

  test("an unknown or impossibly long token is null, not an error", async () => {
    expect(await adapter.useVerificationToken!({ identifier: uniqueEmail(), token: randomUUID() })).toBeNull()
    expect(await adapter.useVerificationToken!({ identifier: uniqueEmail(), token: "t".repeat(5000) })).toBeNull()
  })

  test("concurrent uses of one token: exactly one gets it", async () => {
    const token = newToken()
    await adapter.createVerificationToken!(token)
    const answers = await Promise.all(Array.from({ length: 8 }, () =>
      adapter.useVerificationToken!({ identifier: token.identifier, token: token.token })))
    expect(answers.filter((a) => a !== null)).toEqual([token])
  })

  test("a second token with the same value is a conflict", async () => {
    const token = newToken()
    await adapter.createVerificationToken!(token)
    await expect(adapter.createVerificationToken!(token)).rejects.toMatchObject({ status: 409, code: "conflict" })
  })
})
