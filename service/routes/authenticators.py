"""WebAuthn authenticator (passkey) routes (API.md § Authenticators), for Auth.js's WebAuthn provider."""

from __future__ import annotations

from ..data import authenticators
from ..deps import deps_of
from ..routing import (
    READ,
    WRITE,
    RouteTable,
    created,
    json_response,
    path_part,
    read_body,
)
from ..schemas import Authenticator, AuthenticatorCounterPatch, AuthenticatorCreate

routes = RouteTable("authenticators")


@routes.add("POST", "/v1/authenticators", scope=WRITE, summary="Register a WebAuthn authenticator (passkey)",
            body=AuthenticatorCreate, answer=Authenticator, status=201, errors=(409, 422))
async def create_authenticator(request):
    body = await read_body(request, AuthenticatorCreate)
    row = await authenticators.create_authenticator(deps_of(request), body)
    return created(row, f"/v1/authenticators/{path_part(row['credentialID'])}")


@routes.add("GET", "/v1/authenticators/{credentialID}", scope=READ, summary="One authenticator by credential id",
            answer=Authenticator, errors=(404,))
async def get_authenticator(request):
    return json_response(await authenticators.get_authenticator(deps_of(request),
                                                                 request.match_info["credentialID"]))


@routes.add("PATCH", "/v1/authenticators/{credentialID}", scope=WRITE,
            summary="Store an authenticator's new signature counter", body=AuthenticatorCounterPatch,
            answer=Authenticator, errors=(404, 422))
async def update_authenticator_counter(request):
    body = await read_body(request, AuthenticatorCounterPatch)
    return json_response(await authenticators.update_counter(deps_of(request), request.match_info["credentialID"],
                                                             body.counter))
