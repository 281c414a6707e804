import { describe, expect, test } from "vitest"

import { adapter, authjsUser, inMinutes, randomUUID, serviceSession } from "./service.js"

async function newSession(minutes = 60) {
  const user = await adapter.createUser!(authjsUser())
  const input = { sessionToken: randomUUID(), userId: user.id, expires: inMinutes(minutes) }
  return { user, input, session: await adapter.createSession!(input) }
}

describe("sessions", () => {
  test("createSession stores the session and answers it with a Date", async () => {
    const { input, session } = await newSession()
    expect(session).toEqual({ ...input, id: expect.any(String) })
    const stored = await serviceSession(input.sessionToken)
    expect(stored).toEqual({ ...input, id: (session as { id?: string }).id, expires: input.expires.toISOString() })
  })

  test("createSession for an unknown user throws", async () => {
    await expect(adapter.createSession!({ sessionToken: randomUUID(), userId: randomUUID(),
                                          expires: inMinutes(5) })).rejects.toMatchObject({ status: 422 })
  })

  test("getSessionAndUser answers the session with its user, and null for unknown or forged tokens", async () => {
    const { user, session } = await newSession()
    expect(await adapter.getSessionAndUser!(session.sessionToken)).toEqual({ session, user })
    expect(await adapter.getSessionAndUser!("invalid-token")).toBeNull()
    // A forged cookie can be any length; Auth.js's own adapters answer null for it, not an error.
    expect(await adapter.getSessionAndUser!("x".repeat(4096))).toBeNull()
  })

  test("updateSession moves the expiry; unknown sessions are null", async () => {
    const { input, session } = await newSession()
    const expires = inMinutes(60 * 24 * 30)
    expect(expires.getTime()).not.toBe(session.expires.getTime())
    const updated = await adapter.updateSession!({ sessionToken: input.sessionToken, expires })
    expect(updated).toEqual({ ...session, expires })
    expect((await serviceSession(input.sessionToken)).expires).toBe(expires.toISOString())
    expect(await adapter.updateSession!({ sessionToken: randomUUID(), expires })).toBeNull()
    expect(await adapter.updateSession!({ sessionToken: "x".repeat(4096), expires })).toBeNull()
  })

  test("updateSession without an expiry changes nothing and answers the session", async () => {
    const { input, session } = await newSession()
    expect(await adapter.updateSession!({ sessionToken: input.sessionToken })).toEqual(session)
    expect(await adapter.updateSession!({ sessionToken: randomUUID() })).toBeNull()
  })

  test("deleteSession removes the session and answers it; a second delete is null", async () => {
    const { input, session } = await newSession()
    expect(await adapter.deleteSession!(input.sessionToken)).toEqual(session)
    expect(await serviceSession(input.sessionToken)).toBeNull()
    expect(await adapter.getSessionAndUser!(input.sessionToken)).toBeNull()
    expect(await adapter.deleteSession!(input.sessionToken)).toBeNull()
  })
})
