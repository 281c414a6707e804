/**
 * An Auth.js adapter whose storage is the Astrowellness data service (its HTTP API, docs/API.md).
 *
 * It answers what Auth.js's own database adapters answer: `Date` objects for times, `null` when a row
 * does not exist, and the row itself otherwise (as @auth/prisma-adapter does: users carry the service's
 * `role`, `createdAt` and `updatedAt` too). Every other answer of the service is a thrown
 * `AstrowellnessError` carrying the problem's `status`, `code` and `requestId`.
 */

import type {
  Adapter,
  AdapterAccount,
  AdapterAuthenticator,
  AdapterSession,
  AdapterUser,
  VerificationToken,
} from "@auth/core/adapters"

import { type AstrowellnessAdapterOptions, AstrowellnessError, MISSING, makeRequester, segment } from "./http.js"

export { AstrowellnessError, type AstrowellnessAdapterOptions, type FieldProblem } from "./http.js"

// ---- the service's JSON shapes (docs/API.md) ---------------------------------------------------------

interface UserJson {
  id: string
  email: string
  emailVerified: string | null
  name: string | null
  image: string | null
  role: string
  createdAt: string
  updatedAt: string
}

interface AccountJson {
  id: string
  userId: string
  type: string
  provider: string
  providerAccountId: string
  refresh_token: string | null
  access_token: string | null
  expires_at: number | null
  token_type: string | null
  scope: string | null
  id_token: string | null
  session_state: string | null
}

interface SessionJson {
  id: string
  sessionToken: string
  userId: string
  expires: string
}

interface VerificationTokenJson {
  identifier: string
  token: string
  expires: string
}

interface AuthenticatorJson {
  credentialID: string
  userId: string
  providerAccountId: string
  credentialPublicKey: string
  counter: number
  credentialDeviceType: string
  credentialBackedUp: boolean
  transports: string | null
}

interface PageJson<T> {
  data: T[]
  pagination: { hasNext: boolean; nextCursor?: string | null }
}

/** The user fields the service stores; anything else a provider's profile() adds is not sent. */
const USER_FIELDS = ["email", "name", "image", "emailVerified", "role"] as const
const ROLES = new Set(["USER", "ADMIN"])

/** The Account fields the service stores. Providers' token answers carry more (`expires_in`,
 *  `refresh_token_expires_in`, ...); the service refuses unknown fields, so only these are sent. */
const ACCOUNT_FIELDS = ["userId", "type", "provider", "providerAccountId", "refresh_token", "access_token",
                        "expires_at", "token_type", "scope", "id_token", "session_state"] as const
const TOKEN_FIELDS = ["refresh_token", "access_token", "expires_at", "token_type", "scope", "id_token",
                      "session_state"] as const

export type AccountTokens = Partial<Pick<AdapterAccount, (typeof TOKEN_FIELDS)[number]>>

const LIST_PAGE_SIZE = 100

// ---- conversions: service JSON -> what Auth.js expects ---------------------------------------------

function toUser(json: UserJson): AdapterUser {
  return {
    id: json.id,
    email: json.email,
    emailVerified: json.emailVerified === null ? null : new Date(json.emailVerified),
    name: json.name,
    image: json.image,
    role: json.role,
    createdAt: new Date(json.createdAt),
    updatedAt: new Date(json.updatedAt),
  } as AdapterUser
}

function toAccount(json: AccountJson): AdapterAccount {
  return { ...json, type: json.type as AdapterAccount["type"] } as AdapterAccount
}

function toSession(json: SessionJson): AdapterSession {
  return { id: json.id, sessionToken: json.sessionToken, userId: json.userId,
           expires: new Date(json.expires) } as AdapterSession
}

function toVerificationToken(json: VerificationTokenJson): VerificationToken {
  return { identifier: json.identifier, token: json.token, expires: new Date(json.expires) }
}

function toAuthenticator(json: AuthenticatorJson): AdapterAuthenticator {
  return {
    credentialID: json.credentialID,
    userId: json.userId,
    providerAccountId: json.providerAccountId,
    credentialPublicKey: json.credentialPublicKey,
    counter: json.counter,
    credentialDeviceType: json.credentialDeviceType,
    credentialBackedUp: json.credentialBackedUp,
    transports: json.transports ?? null,
  }
}

/** The listed keys of `source` that are set (undefined ones are left out, null ones kept). */
function pick<K extends string>(source: object, keys: readonly K[]): Partial<Record<K, unknown>> {
  const out: Partial<Record<K, unknown>> = {}
  for (const key of keys) {
    const value = (source as Record<string, unknown>)[key]
    if (value !== undefined) out[key] = value
  }
  return out
}

function userBody(user: Partial<AdapterUser>): Record<string, unknown> {
  const body: Record<string, unknown> = pick(user, USER_FIELDS)
  // Auth.js's `role` comes from the app's own typing; the service knows only USER and ADMIN.
  if (body.role !== undefined && !ROLES.has(body.role as string)) delete body.role
  return body
}

function orNull<T, R>(value: T | typeof MISSING, convert: (json: T) => R): R | null {
  return value === MISSING ? null : convert(value)
}

/** What the adapter adds beyond Auth.js's `Adapter`: token rotation for refresh-token flows. */
export interface AstrowellnessAdapter extends Adapter {
  /** Replace an account's tokens (refresh-token rotation); null when the account is not linked. */
  updateAccountTokens(account: Pick<AdapterAccount, "provider" | "providerAccountId">,
                      tokens: AccountTokens): Promise<AdapterAccount | null>
}

/**
 * ```ts
 * import { AstrowellnessAdapter } from "@astrowellness/authjs-adapter"
 * export const { handlers, auth } = NextAuth({
 *   adapter: AstrowellnessAdapter({ baseUrl: process.env.DATA_URL!, token: process.env.DATA_TOKEN! }),
 * })
 * ```
 */
export function AstrowellnessAdapter(options: AstrowellnessAdapterOptions): AstrowellnessAdapter {
  const request = makeRequester(options)

  return {
    async createUser(user) {
      // The service makes the id (as @auth/prisma-adapter lets the database do); Auth.js uses the answer.
      return toUser((await request<UserJson>("POST", "/v1/users", userBody(user))) as UserJson)
    },

    async getUser(id) {
      return orNull(await request<UserJson>("GET", `/v1/users/${segment(id)}`), toUser)
    },

    async getUserByEmail(email) {
      return orNull(await request<UserJson>("GET", `/v1/users/by-email/${segment(email)}`), toUser)
    },

    async getUserByAccount({ provider, providerAccountId }) {
      return orNull(await request<UserJson>(
        "GET", `/v1/users/by-account/${segment(provider)}/${segment(providerAccountId)}`), toUser)
    },

    async updateUser(user) {
      const found = await request<UserJson>("PATCH", `/v1/users/${segment(user.id)}`, userBody(user))
      // Auth.js only updates users it has just read: a missing one is an error, as in Prisma's adapter.
      if (found === MISSING) throw missingError("user", user.id)
      return toUser(found)
    },

    async deleteUser(userId) {
      // The service deletes the user's accounts, sessions and authenticators with it.
      const answer = await request<undefined>("DELETE", `/v1/users/${segment(userId)}`)
      return answer === MISSING ? null : undefined
    },

    async linkAccount(account) {
      const json = (await request<AccountJson>("POST", "/v1/accounts", pick(account, ACCOUNT_FIELDS))) as AccountJson
      return toAccount(json)
    },

    async unlinkAccount({ provider, providerAccountId }) {
      await request("DELETE", `/v1/accounts/${segment(provider)}/${segment(providerAccountId)}`)
      return undefined
    },

    async getAccount(providerAccountId, provider) {
      return orNull(await request<AccountJson>(
        "GET", `/v1/accounts/${segment(provider)}/${segment(providerAccountId)}`), toAccount)
    },

    async updateAccountTokens({ provider, providerAccountId }, tokens) {
      return orNull(await request<AccountJson>(
        "PATCH", `/v1/accounts/${segment(provider)}/${segment(providerAccountId)}`, pick(tokens, TOKEN_FIELDS)),
        toAccount)
    },

    async createSession({ sessionToken, userId, expires }) {
      return toSession((await request<SessionJson>("POST", "/v1/sessions",
                                                   { sessionToken, userId, expires })) as SessionJson)
    },

    async getSessionAndUser(sessionToken) {
      // Session tokens travel in bodies, never in a path (they would be logged).
      const found = await request<{ session: SessionJson; user: UserJson }>(
        "POST", "/v1/sessions/lookup", { sessionToken })
      return found === MISSING ? null : { session: toSession(found.session), user: toUser(found.user) }
    },

    async updateSession({ sessionToken, expires }) {
      if (expires === undefined) {
        // Nothing the service stores would change: answer the session as it is.
        const found = await request<{ session: SessionJson }>("POST", "/v1/sessions/lookup", { sessionToken })
        return found === MISSING ? null : toSession(found.session)
      }
      return orNull(await request<SessionJson>("POST", "/v1/sessions/update", { sessionToken, expires }), toSession)
    },

    async deleteSession(sessionToken) {
      return orNull(await request<SessionJson>("POST", "/v1/sessions/delete", { sessionToken }), toSession)
    },

    async createVerificationToken({ identifier, token, expires }) {
      return toVerificationToken((await request<VerificationTokenJson>(
        "POST", "/v1/verification-tokens", { identifier, token, expires })) as VerificationTokenJson)
    },

    async useVerificationToken({ identifier, token }) {
      // A sign-in link without its e-mail parameter arrives without an identifier: the token alone is
      // unique, and Auth.js compares the identifiers itself when it has one.
      const body = identifier ? { identifier, token } : { token }
      return orNull(await request<VerificationTokenJson>("POST", "/v1/verification-tokens/use", body),
                    toVerificationToken)
    },

    async createAuthenticator(authenticator) {
      const body = {
        credentialID: authenticator.credentialID,
        userId: authenticator.userId,
        providerAccountId: authenticator.providerAccountId,
        credentialPublicKey: authenticator.credentialPublicKey,
        counter: authenticator.counter,
        credentialDeviceType: authenticator.credentialDeviceType,
        credentialBackedUp: authenticator.credentialBackedUp,
        transports: authenticator.transports ?? null,
      }
      return toAuthenticator((await request<AuthenticatorJson>("POST", "/v1/authenticators", body)) as AuthenticatorJson)
    },

    async getAuthenticator(credentialID) {
      return orNull(await request<AuthenticatorJson>("GET", `/v1/authenticators/${segment(credentialID)}`),
                    toAuthenticator)
    },

    async listAuthenticatorsByUserId(userId) {
      const all: AdapterAuthenticator[] = []
      // Keyset pages (nextCursor) without counting: a user has a handful, but any number is read whole.
      let next = `/v1/users/${segment(userId)}/authenticators?limit=${LIST_PAGE_SIZE}&count=none`
      for (;;) {
        const answer = await request<PageJson<AuthenticatorJson>>("GET", next)
        if (answer === MISSING) return [] // no such user: no authenticators, as the database adapters say
        all.push(...answer.data.map(toAuthenticator))
        const cursor = answer.pagination.nextCursor
        if (!answer.pagination.hasNext || answer.data.length === 0 || !cursor) return all
        next = `/v1/users/${segment(userId)}/authenticators?limit=${LIST_PAGE_SIZE}&count=none` +
               `&cursor=${encodeURIComponent(cursor)}`
      }
    },

    async updateAuthenticatorCounter(credentialID, newCounter) {
      const found = await request<AuthenticatorJson>(
        "PATCH", `/v1/authenticators/${segment(credentialID)}`, { counter: newCounter })
      // Auth.js has just verified an assertion with this authenticator: missing is an error, not null.
      if (found === MISSING) throw missingError("authenticator", credentialID)
      return toAuthenticator(found)
    },
  }
}

function missingError(what: string, id: string) {
  return new AstrowellnessError(`${what} ${id} not found`, { status: 404, code: "not_found" })
}

export default AstrowellnessAdapter
