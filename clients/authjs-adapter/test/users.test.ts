import { describe, expect, test } from "vitest"

import { AstrowellnessError } from "../src/index.js"
import { adapter, authjsAccount, authjsAuthenticator, authjsUser, randomUUID, serviceAccount,
         serviceAuthenticator, serviceSession, serviceUser, inMinutes, thrown, uniqueEmail } from "./service.js"

describe("users", () => {
  test("createUser stores the user and answers it with Dates and the service's id", async () => {
    const input = authjsUser()
    const created = await adapter.createUser!(input)
    expect(created.id).toBeTypeOf("string")
    expect(created).toMatchObject({ email: input.email, name: input.name, image: input.image })
    expect(created.emailVerified).toBeInstanceOf(Date)
    expect(created.emailVerified!.getTime()).toBe(input.emailVerified.getTime())
    const stored = await serviceUser(created.id)
    expect(stored).toMatchObject({ id: created.id, email: input.email, name: input.name, image: input.image,
                                   emailVerified: input.emailVerified.toISOString() })
  })

  test("createUser ignores profile fields the service does not store, and keeps a null emailVerified", async () => {
    const input = { ...authjsUser({ emailVerified: null }), login: "ada", bio: "analyst" }
    const created = await adapter.createUser!(input)
    expect(created.emailVerified).toBeNull()
    expect(created).not.toHaveProperty("login")
  })

  test("createUser with a taken e-mail throws a conflict naming the field", async () => {
    const input = authjsUser()
    await adapter.createUser!(input)
    const error = await thrown(adapter.createUser!({ ...input, id: randomUUID() }))
    expect(error).toBeInstanceOf(AstrowellnessError)
    expect(error).toMatchObject({ status: 409, code: "conflict" })
    expect(error.errors.map((e: { field: string }) => e.field)).toContain("email")
    expect(error.requestId).toBeTruthy()
  })

  test("getUser answers null for an unknown id and the user for a known one", async () => {
    expect(await adapter.getUser!(randomUUID())).toBeNull()
    const created = await adapter.createUser!(authjsUser())
    expect(await adapter.getUser!(created.id)).toEqual(created)
  })

  test("getUserByEmail answers null for an unknown address and finds a known one in any case", async () => {
    expect(await adapter.getUserByEmail!("non-existent-email")).toBeNull()
    expect(await adapter.getUserByEmail!(uniqueEmail("nobody"))).toBeNull()
    const created = await adapter.createUser!(authjsUser({ email: uniqueEmail("mixed+tag/slash%25") }))
    expect(await adapter.getUserByEmail!(created.email)).toEqual(created)
    expect(await adapter.getUserByEmail!(created.email.toUpperCase())).toEqual(created)
  })

  test("getUserByAccount answers null for an unlinked account and the owner of a linked one", async () => {
    expect(await adapter.getUserByAccount!({ provider: "invalid-provider",
                                             providerAccountId: "invalid-provider-account-id" })).toBeNull()
    const user = await adapter.createUser!(authjsUser())
    const account = authjsAccount(user.id)
    await adapter.linkAccount!(account)
    expect(await adapter.getUserByAccount!({ provider: account.provider,
                                             providerAccountId: account.providerAccountId })).toEqual(user)
    expect(await adapter.getUserByAccount!({ provider: "google",
                                             providerAccountId: account.providerAccountId })).toBeNull()
  })

  test("updateUser changes only the given fields and answers the whole user", async () => {
    const user = await adapter.createUser!(authjsUser())
    const updated = await adapter.updateUser!({ id: user.id, name: "Updated Name" })
    expect(updated).toMatchObject({ id: user.id, name: "Updated Name", email: user.email, image: user.image })
    expect(updated.emailVerified).toEqual(user.emailVerified)
    expect((await serviceUser(user.id)).name).toBe("Updated Name")

    const verified = inMinutes(0)
    const again = await adapter.updateUser!({ id: user.id, emailVerified: verified, image: null })
    expect(again.emailVerified).toEqual(verified)
    expect(again.image).toBeNull()
    expect(again.name).toBe("Updated Name")
  })

  test("updateUser of an unknown user throws", async () => {
    await expect(adapter.updateUser!({ id: randomUUID(), name: "x" })).rejects.toMatchObject({ status: 404 })
  })

  test("deleteUser removes the user with its sessions, accounts and authenticators", async () => {
    const user = await adapter.createUser!(authjsUser())
    const session = { sessionToken: randomUUID(), userId: user.id, expires: inMinutes(60) }
    await adapter.createSession!(session)
    const account = authjsAccount(user.id)
    await adapter.linkAccount!(account)
    const authenticator = authjsAuthenticator(user.id)
    await adapter.linkAccount!(authjsAccount(user.id, { type: "webauthn", provider: "webauthn",
                                                        providerAccountId: authenticator.credentialID }))
    await adapter.createAuthenticator!(authenticator)

    await adapter.deleteUser!(user.id)

    expect(await serviceUser(user.id)).toBeNull()
    expect(await serviceSession(session.sessionToken)).toBeNull()
    expect(await serviceAccount(account.provider, account.providerAccountId)).toBeNull()
    expect(await serviceAuthenticator(authenticator.credentialID)).toBeNull()
    expect(await adapter.deleteUser!(user.id)).toBeNull()
  })
})
