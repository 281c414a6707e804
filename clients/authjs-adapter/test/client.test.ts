import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"

import { afterAll, beforeAll, describe, expect, test } from "vitest"

import { AstrowellnessAdapter, AstrowellnessError } from "../src/index.js"
import { authjsUser, baseUrl, randomUUID, thrown, token } from "./service.js"

describe("configuration and failures", () => {
  test("base URL and token are required", () => {
    expect(() => AstrowellnessAdapter({ baseUrl: "", token })).toThrow(TypeError)
    expect(() => AstrowellnessAdapter({ baseUrl, token: "" })).toThrow(TypeError)
  })

  test("a trailing slash on the base URL is fine", async () => {
    const adapter = AstrowellnessAdapter({ baseUrl: baseUrl + "/", token })
    const user = await adapter.createUser!(authjsUser())
    expect(await adapter.getUser!(user.id)).toEqual(user)
  })

  test("a wrong token is a thrown 401 with the request id, never a null", async () => {
    const adapter = AstrowellnessAdapter({ baseUrl, token: "not-a-token" })
    const error = await thrown(adapter.getUser!(randomUUID()))
    expect(error).toBeInstanceOf(AstrowellnessError)
    expect(error).toMatchObject({ status: 401, code: "unauthorized" })
    expect(error.requestId).toMatch(/\S/)
  })

  test("a wrong base URL is a thrown route_not_found, not 'no such user'", async () => {
    const adapter = AstrowellnessAdapter({ baseUrl: baseUrl + "/api", token })
    await expect(adapter.getUser!(randomUUID())).rejects.toMatchObject({ status: 404, code: "route_not_found" })
    await expect(adapter.getSessionAndUser!(randomUUID())).rejects.toMatchObject({ code: "route_not_found" })
  })

  test("the given fetch implementation makes every call", async () => {
    const calls: string[] = []
    const adapter = AstrowellnessAdapter({
      baseUrl, token,
      fetch: (input, init) => {
        calls.push(`${init?.method} ${String(input)}`)
        return fetch(input, init)
      },
    })
    const user = await adapter.createUser!(authjsUser())
    await adapter.getUser!(user.id)
    expect(calls).toEqual([`POST ${baseUrl}/v1/users`, `GET ${baseUrl}/v1/users/${user.id}`])
  })

  describe("a service that does not answer", () => {
    let server: Server
    let silentUrl: string
    beforeAll(async () => {
      server = createServer(() => { /* never answers */ })
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      silentUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    })
    afterAll(async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    })

    test("times out with code 'timeout' after timeoutMs", async () => {
      const adapter = AstrowellnessAdapter({ baseUrl: silentUrl, token, timeoutMs: 300 })
      const started = Date.now()
      await expect(adapter.getUser!(randomUUID())).rejects.toMatchObject({ code: "timeout", status: null })
      expect(Date.now() - started).toBeLessThan(5_000)
    })
  })

  test("a service that is not listening is a thrown network_error", async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const port = (server.address() as AddressInfo).port
    await new Promise((resolve) => server.close(resolve))
    const adapter = AstrowellnessAdapter({ baseUrl: `http://127.0.0.1:${port}`, token })
    await expect(adapter.getUser!(randomUUID())).rejects.toMatchObject({ code: "network_error" })
  })
})

test("the adapter has every method of Auth.js's Adapter, WebAuthn ones included", () => {
  const adapter = AstrowellnessAdapter({ baseUrl, token })
  for (const method of ["createUser", "getUser", "getUserByEmail", "getUserByAccount", "updateUser", "deleteUser",
                        "linkAccount", "unlinkAccount", "getAccount", "createSession", "getSessionAndUser",
                        "updateSession", "deleteSession", "createVerificationToken", "useVerificationToken",
                        "createAuthenticator", "getAuthenticator", "listAuthenticatorsByUserId",
                        "updateAuthenticatorCounter", "updateAccountTokens"]) {
    expect(adapter, method).toHaveProperty(method, expect.any(Function))
  }
})
