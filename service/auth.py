"""Service tokens: `SERVICE_TOKENS=name:token[:scope],...`; scope read or write (write includes read)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from aiohttp import web

from .deps import CALLER
from .problems import Problem
from .routing import PUBLIC, WRITE


@dataclass(frozen=True)
class Caller:
    name: str
    scope: str


class TokenError(ValueError):
    pass


def parse_service_tokens(spec: str) -> dict[bytes, Caller]:
    """Tokens keyed by their SHA-256 digest, so the raw tokens are not kept around in memory."""
    tokens: dict[bytes, Caller] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise TokenError("SERVICE_TOKENS entries are name:token[:scope]")
        scope = parts[2] if len(parts) == 3 else WRITE
        if scope not in ("read", "write"):
            raise TokenError(f"SERVICE_TOKENS: scope of {parts[0]!r} must be read or write")
        tokens[_digest(parts[1])] = Caller(parts[0], scope)
    return tokens


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def authenticate(tokens: dict[bytes, Caller], header: str | None) -> Caller:
    # RFC 9110: the scheme name is case-insensitive ("bearer", "BEARER" are the same scheme).
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Problem(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    presented = _digest(credentials.strip())
    found = None
    # Compare with every known token in constant time: no early exit that timing could reveal.
    for digest, caller in tokens.items():
        if hmac.compare_digest(digest, presented):
            found = caller
    if found is None:
        raise Problem(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return found


def caller_of(tokens: dict[bytes, Caller], request: web.Request) -> Caller | None:
    """The caller the request's bearer token names, checked against the matched route's scope (401 without
    a known token, 403 for a read token on a write route); None on a public route. Called by the edge
    middleware (app.py) rather than being a middleware of its own: each aiohttp middleware layer is a
    partial and a coroutine on every request."""
    match_info = request.match_info
    if match_info.route.resource is None:  # no route matched: the 404/405 answer needs no token
        return None
    scope = getattr(match_info.handler, "scope", WRITE)  # a route outside the table needs a write token
    if scope == PUBLIC:
        return None
    caller = authenticate(tokens, request.headers.get("Authorization"))
    if scope == WRITE and caller.scope != WRITE:
        raise Problem(403, "this token may only read")
    request[CALLER] = caller
    return caller
