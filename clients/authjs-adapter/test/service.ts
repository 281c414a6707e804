/**
 * The service the tests run against: AW_BASE_URL and AW_TOKEN (a write token), set by the repository's
 * tests/test_clients.py, which starts a real service on a fresh database. Without them the tests fail:
 * an adapter test that cannot reach the service proves nothing.
 */
import { randomUUID } from "node:crypto"

import type { AdapterAccount } from "@auth/core/adapters"

import { AstrowellnessAdapter } from "../src/index.js"

export const baseUrl = process.env.AW_BASE_URL ?? ""
export const token = process.env.AW_TOKEN ?? ""
if (!baseUrl || !token) {
  throw new Error("set AW_BASE_URL and AW_TOKEN to a running data service (tests/test_clients.py does)")
}

export const adapter = AstrowellnessAdapter({ baseUrl, token })

/**
 * The service's own view of a row, read with plain HTTP (not through the adapter), like the `db`
 * functions of Auth.js's adapter tests: null when it answers 404.
 */
export async function raw(method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(baseUrl + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  if (response.status === 404) return null
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`)
  return response.status === 204 ? undefined : response.json()
}

export const serviceUser = (id: string) => raw("GET", `/v1/users/${encodeURIComponent(id)}`)
export const serviceSession = async (sessionToken: string) =>
  (await raw("POST", "/v1/sessions/lookup", { sessionToken }))?.session ?? null
export const serviceAccount = (provider: string, providerAccountId: string) =>
  raw("GET", `/v1/accounts/${encodeURIComponent(provider)}/${encodeURIComponent(providerAccountId)}`)
export const serviceAuthenticator = (credentialID: string) =>
  raw("GET", `/v1/authenticators/${encodeURIComponent(credentialID)}`)

export function uniqueEmail(prefix = "user") {
  return `${prefix}-${randomUUID().slice(0, 12)}@example.com`
}

/** A time the service stores exactly: it keeps milliseconds. */
export function inMinutes(minutes: number) {
  return new Date(Math.round(Date.now() / 1000) * 1000 + minutes * 60_000 + 123)
}

/** A user as Auth.js hands it to createUser (core makes a random id; the service makes its own). */
export function authjsUser(overrides: Record<string, unknown> = {}) {
  return {
    id: randomUUID(),
    email: uniqueEmail(),
    emailVerified: inMinutes(-5),
    name: "Ada Lovelace",
    image: "https://example.com/ada.png",
    ...overrides,
  }
}

/** An OAuth account as Auth.js hands it to linkAccount, with the extra token fields providers send. */
export function authjsAccount(userId: string, overrides: Partial<AdapterAccount> = {}): AdapterAccount {
  return {
    userId,
    type: "oauth" as const,
    provider: "github",
    providerAccountId: randomUUID(),
    access_token: randomUUID(),
    refresh_token: randomUUID(),
    id_token: randomUUID(),
    expires_at: Math.floor(Date.now() / 1000) + 3600,
    token_type: "bearer" as Lowercase<string>,
    scope: "read:user user:email",
    session_state: randomUUID(),
    ...overrides,
  }
}

export function authjsAuthenticator(userId: string, credentialID = randomUUID(), counter = 7) {
  return {
    credentialID,
    userId,
    providerAccountId: credentialID,
    credentialPublicKey: Buffer.from(randomUUID()).toString("base64url"),
    counter,
    credentialDeviceType: "multiDevice",
    credentialBackedUp: true,
    transports: "internal,hybrid",
  }
}

/** What a call threw (the adapter's methods are typed Awaitable, so `.catch` is not on them). */
export async function thrown(call: unknown): Promise<any> {
  try {
    await call
  } catch (error) {
    return error
  }
  throw new Error("expected the call to throw")
}

export { randomUUID }
