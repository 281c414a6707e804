/**
 * The HTTP side of the adapter: one `request` function that adds the bearer token and a timeout,
 * decodes JSON, and turns the service's problem+json answers into thrown errors.
 */

export interface AstrowellnessAdapterOptions {
  /** The data service's base URL, e.g. `http://data.internal:8080` (no `/v1`). */
  baseUrl: string
  /** A service token (`SERVICE_TOKENS`) with write scope. */
  token: string
  /** A `fetch` implementation; defaults to the global one (Node 18+, edge runtimes). */
  fetch?: typeof globalThis.fetch
  /** Milliseconds before a call is abandoned (default 10 000). */
  timeoutMs?: number
}

/** One `{field, message}` of a validation or conflict problem. */
export interface FieldProblem {
  field: string
  message: string
}

/**
 * The service answered with a problem (RFC 9457), or not at all. `code` is the service's problem
 * code (`conflict`, `validation_error`, `unauthorized`, `route_not_found`, ...) or, when there was no
 * problem body, `timeout`, `network_error` or `unexpected_response`.
 */
export class AstrowellnessError extends Error {
  readonly status: number | null
  readonly code: string
  readonly requestId: string | null
  readonly errors: FieldProblem[]

  constructor(message: string, init: { status?: number | null; code: string; requestId?: string | null;
                                       errors?: FieldProblem[]; cause?: unknown }) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause })
    this.name = "AstrowellnessError"
    this.status = init.status ?? null
    this.code = init.code
    this.requestId = init.requestId ?? null
    this.errors = init.errors ?? []
  }
}

/** What `request` answers when the service says the row does not exist (code `not_found`). */
export const MISSING = Symbol("missing")

export type Requester = <T>(method: string, path: string, body?: unknown) => Promise<T | typeof MISSING>

interface ProblemBody {
  title?: string
  detail?: string
  code?: string
  errors?: FieldProblem[]
  requestId?: string
}

const DEFAULT_TIMEOUT_MS = 10_000

export function makeRequester(options: AstrowellnessAdapterOptions): Requester {
  if (!options.baseUrl) throw new TypeError("AstrowellnessAdapter: baseUrl is required")
  if (!options.token) throw new TypeError("AstrowellnessAdapter: token is required")
  const base = options.baseUrl.replace(/\/+$/, "")
  const fetchImpl = options.fetch ?? globalThis.fetch
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const authorization = `Bearer ${options.token}`

  return async function request<T>(method: string, path: string, body?: unknown) {
    const headers: Record<string, string> = { Authorization: authorization, Accept: "application/json" }
    if (body !== undefined) headers["Content-Type"] = "application/json"
    let response: Response
    try {
      response = await fetchImpl(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      })
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")
      throw new AstrowellnessError(
        timedOut ? `${method} ${path}: no answer within ${timeoutMs} ms` : `${method} ${path}: ${String(error)}`,
        { code: timedOut ? "timeout" : "network_error", cause: error })
    }
    const requestId = response.headers.get("x-request-id")
    if (response.status === 204) return undefined as T
    const text = await response.text()
    const type = response.headers.get("content-type") ?? ""
    let parsed: unknown
    try {
      parsed = text ? JSON.parse(text) : undefined
    } catch {
      parsed = undefined
    }
    if (response.ok) {
      if (parsed === undefined || !type.includes("json")) {
        throw new AstrowellnessError(`${method} ${path}: answered ${response.status} without JSON`,
                                     { status: response.status, code: "unexpected_response", requestId })
      }
      return parsed as T
    }
    const problem = (type.includes("json") && parsed && typeof parsed === "object" ? parsed : {}) as ProblemBody
    // Only the service's own "no such row" is a missing row; a 404 from a wrong base URL or a proxy
    // (no problem body, or code route_not_found) is a configuration error and must be loud.
    if (response.status === 404 && problem.code === "not_found") return MISSING
    throw new AstrowellnessError(
      `${method} ${path}: ${response.status} ${problem.detail ?? problem.title ?? response.statusText}`,
      { status: response.status, code: problem.code ?? "unexpected_response",
        requestId: problem.requestId ?? requestId, errors: problem.errors })
  }
}

/** A path segment, escaped (ids, e-mails and provider account ids may hold `/`, `?`, `#`, `%`). */
export function segment(value: string): string {
  return encodeURIComponent(value)
}
