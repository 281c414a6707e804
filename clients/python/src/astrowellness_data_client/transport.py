"""HTTP: one aiohttp session per client (connections are kept alive and reused), the bearer token,
timeouts, retries, and problem+json answers turned into exceptions.

Retries (RetryPolicy): a request is tried again only when trying it again cannot do anything twice:
- the connection could not be made (nothing was sent): any request;
- 429 Too Many Requests (refused before it was handled): any request;
- 503 Unavailable, a timeout, or a connection cut after the request was sent: only idempotent requests.
  GET/HEAD/PUT/DELETE are; the POST and PATCH routes that only read or that set absolute values
  (sessions/lookup, verify-password, sessions/update, PATCH of a user, account tokens or a counter) are
  marked idempotent by the resource that calls them. A create, `verification-tokens/use` or a sweep is
  never repeated: the service may have applied it just before the database became unreachable, and a
  second try would answer 409 or 404, or use a single-use token twice.
The wait before try n is `Retry-After` when the answer has one (the service sends it with every 503),
else exponential backoff with full jitter. A `Retry-After` longer than `max_retry_after` is not waited
for: the error is raised at once with its `retry_after`, so a caller is never held for minutes.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import msgspec

from . import __version__
from .errors import (
    ProblemError,
    Timeout,
    TransportError,
    UnexpectedResponse,
    problem_class,
)
from .models import ProblemBody

T = TypeVar("T")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 503})
# Answers without a problem body (a proxy's, a load balancer's) that still say what happened.
_STATUS_ONLY_CODES = {404: "route_not_found", 429: "too_many_requests", 503: "unavailable"}


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # tries in all, the first one included; 1 turns retries off
    backoff: float = 0.2  # seconds before the first retry when the answer gives no Retry-After
    max_backoff: float = 5.0
    max_retry_after: float = 30.0


DEFAULT_RETRY = RetryPolicy()
NO_RETRIES = RetryPolicy(attempts=1)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 § 10.2.3); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Transport:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, connect_timeout: float | None = 3.0,
                 retry: RetryPolicy = DEFAULT_RETRY, max_connections: int = 100,
                 session: aiohttp.ClientSession | None = None,
                 trace_configs: Sequence[aiohttp.TraceConfig] | None = None, user_agent: str | None = None):
        if not base_url:
            raise ValueError("base_url is required")
        if not token:
            raise ValueError("token is required")
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                        "User-Agent": user_agent or f"astrowellness-data-client/{__version__}"}
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections
        self._trace_configs = list(trace_configs or [])

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Made on first use, inside the running loop; one connector, so connections are reused.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, enable_cleanup_closed=True),
                timeout=self.timeout, trace_configs=self._trace_configs, raise_for_status=False)
        return self._session

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def request(self, method: str, path: str, *, params: Any = None, json: Any = msgspec.UNSET,
                      data: bytes | None = None, headers: dict[str, str] | None = None,
                      idempotent: bool | None = None, accept: frozenset[int] = frozenset()) -> tuple[int, bytes, str]:
        """Send with retries; answer (status, body, content type) of a 2xx (or a status in `accept`),
        or raise."""
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        body = data
        send_headers = dict(self.headers)
        if json is not msgspec.UNSET:
            body = msgspec.json.encode(json)
            send_headers["Content-Type"] = "application/json"
        if headers:
            send_headers.update(headers)
        url = self.base_url + path
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.retry.attempts
            try:
                async with self.session.request(method, url, params=params, data=body,
                                                headers=send_headers) as response:
                    payload = await response.read()
                    if response.status < 400 or response.status in accept:
                        return response.status, payload, response.content_type
                    error = _problem(response, payload)
            except aiohttp.ClientConnectorError as exc:  # nothing was sent: safe to retry anything
                if last:
                    raise TransportError(f"{method} {path}: cannot connect: {exc}") from exc
                await asyncio.sleep(self._backoff(attempt))
                continue
            except (TimeoutError, aiohttp.ClientError) as exc:
                if last or not idempotent:
                    kind = Timeout if isinstance(exc, asyncio.TimeoutError) else TransportError
                    raise kind(f"{method} {path}: {type(exc).__name__} {exc}".strip()) from exc
                await asyncio.sleep(self._backoff(attempt))
                continue
            retryable = isinstance(error, ProblemError) and error.status in RETRY_STATUSES and (
                idempotent or error.status == 429)
            if last or not retryable:
                raise error
            wait = error.retry_after
            if wait is None:
                wait = self._backoff(attempt)
            elif wait > self.retry.max_retry_after:
                raise error
            await asyncio.sleep(wait)

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.retry.max_backoff, self.retry.backoff * 2 ** (attempt - 1)))


def _problem(response: aiohttp.ClientResponse, payload: bytes) -> Exception:
    request_id = response.headers.get("X-Request-Id")
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    body = None
    if "json" in response.content_type:
        try:
            body = msgspec.json.decode(payload, type=ProblemBody)
        except msgspec.DecodeError:
            body = None
    if body is None:
        if response.status not in _STATUS_ONLY_CODES:
            return UnexpectedResponse(f"{response.method} {response.url.path}: {response.status} without a problem "
                                      "body", response.status, request_id)
        # A proxy's own 429/503 is just as retryable, and its 404 as much a wrong route as the service's.
        body = ProblemBody(status=response.status, code=_STATUS_ONLY_CODES[response.status],
                           detail=payload[:200].decode("utf-8", "replace"))
    cls = problem_class(body.code, response.status)
    return cls(body, response.status, request_id, retry_after)


def decode(payload: bytes, type: type[T], what: str) -> T:
    try:
        return msgspec.json.decode(payload, type=type)
    except msgspec.ValidationError as exc:
        raise UnexpectedResponse(f"{what}: the answer does not fit {getattr(type, '__name__', type)}: {exc}") from exc
