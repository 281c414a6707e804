import { describe, expect, test } from "vitest"

import { adapter, authjsAccount, authjsUser, randomUUID, serviceAccount } from "./service.js"

describe("accounts", () => {
  test("linkAccount stores every Account field and answers the stored account", async () => {
    const user = await adapter.createUser!(authjsUser())
    const account = authjsAccount(user.id)
    const linked = await adapter.linkAccount!(account)
    expect(linked).toMatchObject(account)
    const stored = await serviceAccount(account.provider, account.providerAccountId)
    expect(stored).toEqual({ ...account, id: stored.id })
    expect(linked).toEqual(stored)
  })

  test("linkAccount leaves out the extra token fields providers answer (expires_in, ...)", async () => {
    const user = await adapter.createUser!(authjsUser())
    const account = { ...authjsAccount(user.id), expires_in: 3600, refresh_token_expires_in: 15897600,
                      "not-before-policy": 0 }
    const linked = await adapter.linkAccount!(account)
    expect(linked).not.toHaveProperty("expires_in")
    expect(linked).toMatchObject({ provider: account.provider, access_token: account.access_token })
  })

  test("an e-mail sign-in account has no tokens: they are null", async () => {
    const user = await adapter.createUser!(authjsUser())
    const linked = await adapter.linkAccount!({ userId: user.id, type: "email", provider: "email",
                                                providerAccountId: user.email })
    expect(linked).toMatchObject({ access_token: null, refresh_token: null, expires_at: null })
  })

  test("linkAccount to an unknown user, or an account linked twice, throws", async () => {
    await expect(adapter.linkAccount!(authjsAccount(randomUUID()))).rejects.toMatchObject({ status: 422 })
    const user = await adapter.createUser!(authjsUser())
    const account = authjsAccount(user.id)
    await adapter.linkAccount!(account)
    await expect(adapter.linkAccount!(account)).rejects.toMatchObject({ status: 409, code: "conflict" })
  })

  test("getAccount answers null unless both the provider and its account id match", async () => {
    const user = await adapter.createUser!(authjsUser())
    const account = authjsAccount(user.id, { provider: "auth0" })
    await adapter.linkAccount!(account)
    expect(await adapter.getAccount!("invalid-provider-account-id", "invalid-provider")).toBeNull()
    expect(await adapter.getAccount!(account.providerAccountId, "invalid-provider")).toBeNull()
    expect(await adapter.getAccount!("invalid-provider-account-id", "auth0")).toBeNull()
    const found = await adapter.getAccount!(account.providerAccountId, "auth0")
    expect(found).toEqual(await serviceAccount("auth0", account.providerAccountId))
  })

  test("unlinkAccount removes the link; unlinking it again is quiet", async () => {
    const user = await adapter.createUser!(authjsUser())
    const account = authjsAccount(user.id)
    await adapter.linkAccount!(account)
    await adapter.unlinkAccount!({ provider: account.provider, providerAccountId: account.providerAccountId })
    expect(await serviceAccount(account.provider, account.providerAccountId)).toBeNull()
    await expect(adapter.unlinkAccount!({ provider: account.provider,
                                          providerAccountId: account.providerAccountId })).resolves.toBeUndefined()
  })

  test("updateAccountTokens rotates the tokens and keeps the rest; an unlinked account is null", async () => {
    const user = await adapter.createUser!(authjsUser())
    const account = authjsAccount(user.id)
    await adapter.linkAccount!(account)
    const rotated = { access_token: randomUUID(), refresh_token: randomUUID(),
                      expires_at: Math.floor(Date.now() / 1000) + 7200 }
    const answer = await adapter.updateAccountTokens({ provider: account.provider,
                                                      providerAccountId: account.providerAccountId }, rotated)
    expect(answer).toMatchObject({ ...account, ...rotated })
    expect(await serviceAccount(account.provider, account.providerAccountId)).toMatchObject(rotated)
    expect(await adapter.updateAccountTokens({ provider: "github", providerAccountId: randomUUID() },
                                             rotated)).toBeNull()
  })
})
