"""Auth.js session and verification-token routes (API.md § Sessions, § Verification tokens).

Secret tokens travel only in bodies, so every route here is a POST.
"""

from __future__ import annotations

import re

from ..data import sessions, verification_tokens
from ..deps import deps_of
from ..problems import not_found
from ..routing import READ, WRITE, RouteTable, cached_json, json_response, read_body
from ..schemas import (
    TOKEN_PATTERN,
    Session,
    SessionAndUser,
    SessionCreate,
    SessionToken,
    SessionUpdate,
    VerificationToken,
    VerificationTokenCreate,
    VerificationTokenUse,
)

routes = RouteTable("sessions")
_POSSIBLE_TOKEN = re.compile(TOKEN_PATTERN)


def existing_token(token: str, what: str) -> str:
    """A token that no create could have stored (a forged, over-long or non-ASCII cookie) is simply
    not found: Auth.js adapters answer null for it rather than throw (and it never reaches the cache)."""
    if not _POSSIBLE_TOKEN.match(token):
        raise not_found(what)
    return token


@routes.add("POST", "/v1/sessions", scope=WRITE, summary="Create a session", body=SessionCreate,
            answer=Session, status=201, errors=(409, 422))
async def create_session(request):
    body = await read_body(request, SessionCreate)
    return json_response(await sessions.create_session(deps_of(request), body), 201)


@routes.add("POST", "/v1/sessions/lookup", scope=READ, summary="Session and user by session token",
            body=SessionToken, answer=SessionAndUser, errors=(404,))
async def lookup_session(request):
    body = await read_body(request, SessionToken)
    return cached_json(await sessions.lookup_session(deps_of(request), existing_token(body.sessionToken, "session")), "session")


@routes.add("POST", "/v1/sessions/update", scope=WRITE, summary="Change a session's expiry",
            body=SessionUpdate, answer=Session, errors=(404,))
async def update_session(request):
    body = await read_body(request, SessionUpdate)
    return json_response(await sessions.update_session(deps_of(request), existing_token(body.sessionToken, "session"),
                                                         body.expires))


@routes.add("POST", "/v1/sessions/delete", scope=WRITE, summary="Delete a session; answers the deleted one",
            body=SessionToken, answer=Session, errors=(404,))
async def delete_session(request):
    body = await read_body(request, SessionToken)
    return json_response(await sessions.delete_session(deps_of(request), existing_token(body.sessionToken, "session")))


@routes.add("POST", "/v1/verification-tokens", scope=WRITE, summary="Create a verification token",
            body=VerificationTokenCreate, answer=VerificationToken, status=201, errors=(409,))
async def create_verification_token(request):
    body = await read_body(request, VerificationTokenCreate)
    return json_response(await verification_tokens.create_verification_token(deps_of(request), body), 201)


@routes.add("POST", "/v1/verification-tokens/use", scope=WRITE,
            summary="Use a verification token: deleted and returned, at most once", body=VerificationTokenUse,
            answer=VerificationToken, errors=(404,))
async def use_verification_token(request):
    body = await read_body(request, VerificationTokenUse)
    return json_response(
        await verification_tokens.use_verification_token(
            deps_of(request), body.identifier, existing_token(body.token, "verification token")))
