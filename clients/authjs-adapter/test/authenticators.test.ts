import { describe, expect, test } from "vitest"

import { adapter, authjsAccount, authjsAuthenticator, authjsUser, randomUUID,
         serviceAuthenticator } from "./service.js"

/** A user with a WebAuthn account per credential, as Auth.js makes them before createAuthenticator. */
async function passkeyUser(credentials: number) {
  const user = await adapter.createUser!(authjsUser())
  const ids = Array.from({ length: credentials }, () => randomUUID())
  for (const id of ids) {
    await adapter.linkAccount!(authjsAccount(user.id, { type: "webauthn", provider: "webauthn",
                                                        providerAccountId: id }))
  }
  return { user, ids }
}

describe("authenticators", () => {
  test("createAuthenticator stores every field and answers them", async () => {
    const { user, ids } = await passkeyUser(1)
    const input = authjsAuthenticator(user.id, ids[0])
    const created = await adapter.createAuthenticator!(input)
    expect(created).toEqual(input)
    expect(await serviceAuthenticator(input.credentialID)).toMatchObject(input)
  })

  test("transports are optional: null when not given", async () => {
    const { user, ids } = await passkeyUser(1)
    const { transports, ...input } = authjsAuthenticator(user.id, ids[0])
    expect(transports).toBeTruthy()
    expect(await adapter.createAuthenticator!(input)).toEqual({ ...input, transports: null })
  })

  test("a credential id registered twice, or for an unknown user, throws", async () => {
    const { user, ids } = await passkeyUser(1)
    const input = authjsAuthenticator(user.id, ids[0])
    await adapter.createAuthenticator!(input)
    await expect(adapter.createAuthenticator!(input)).rejects.toMatchObject({ status: 409, code: "conflict" })
    await expect(adapter.createAuthenticator!(authjsAuthenticator(randomUUID())))
      .rejects.toMatchObject({ status: 422 })
  })

  test("getAuthenticator answers null for an unknown credential and the authenticator for a known one", async () => {
    const { user, ids } = await passkeyUser(1)
    const input = authjsAuthenticator(user.id, ids[0])
    await adapter.createAuthenticator!(input)
    expect(await adapter.getAuthenticator!("invalid-credential-id")).toBeNull()
    expect(await adapter.getAuthenticator!(input.credentialID)).toEqual(input)
  })

  test("listAuthenticatorsByUserId answers each user's own, all of them, and [] for an unknown user", async () => {
    const first = await passkeyUser(2)
    const second = await passkeyUser(1)
    const mine = await Promise.all(first.ids.map((id) => adapter.createAuthenticator!(
      authjsAuthenticator(first.user.id, id))))
    const theirs = await adapter.createAuthenticator!(authjsAuthenticator(second.user.id, second.ids[0]))

    expect(await adapter.listAuthenticatorsByUserId!(randomUUID())).toEqual([])
    const listed = await adapter.listAuthenticatorsByUserId!(first.user.id)
    const byId = (a: { credentialID: string }, b: { credentialID: string }) => a.credentialID.localeCompare(b.credentialID)
    expect([...listed].sort(byId)).toEqual([...mine].sort(byId))
    expect(await adapter.listAuthenticatorsByUserId!(second.user.id)).toEqual([theirs])
  })

  test("listAuthenticatorsByUserId reads past the service's first page", async () => {
    const user = await adapter.createUser!(authjsUser())
    const made = []
    for (let i = 0; i < 103; i++) made.push(await adapter.createAuthenticator!(authjsAuthenticator(user.id)))
    const listed = await adapter.listAuthenticatorsByUserId!(user.id)
    expect(new Set(listed.map((a) => a.credentialID))).toEqual(new Set(made.map((a) => a.credentialID)))
    expect(listed).toHaveLength(103)
  })

  test("updateAuthenticatorCounter stores the new counter; an unknown credential throws", async () => {
    const { user, ids } = await passkeyUser(1)
    const created = await adapter.createAuthenticator!(authjsAuthenticator(user.id, ids[0], 41))
    await expect(adapter.updateAuthenticatorCounter!("invalid-credential-id", 5)).rejects.toMatchObject({ status: 404 })
    const updated = await adapter.updateAuthenticatorCounter!(created.credentialID, 42)
    expect(updated).toEqual({ ...created, counter: 42 })
    expect((await serviceAuthenticator(created.credentialID)).counter).toBe(42)
  })
})
