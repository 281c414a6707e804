"""OAuth account routes (API.md § Accounts)."""

from __future__ import annotations

from ..crypto import without_tokens
from ..data import accounts
from ..deps import CALLER, deps_of
from ..routing import (
    READ,
    WRITE,
    RouteTable,
    created,
    json_response,
    no_content,
    path_part,
    read_body,
)
from ..schemas import Account, AccountCreate, AccountTokensPatch

routes = RouteTable("accounts")


@routes.add("POST", "/v1/accounts", scope=WRITE, summary="Link an OAuth account to a user",
            body=AccountCreate, answer=Account, status=201, errors=(409, 422))
async def link_account(request):
    body = await read_body(request, AccountCreate)
    row = await accounts.link_account(deps_of(request), body)
    return created(row, f"/v1/accounts/{path_part(row['provider'])}/{path_part(row['providerAccountId'])}")


@routes.add("GET", "/v1/accounts/{provider}/{providerAccountId}", scope=READ, summary="One OAuth account",
            answer=Account, errors=(404,))
async def get_account(request):
    info = request.match_info
    account = await accounts.get_account(deps_of(request), info["provider"], info["providerAccountId"])
    return json_response(visible_account(request, account))


def visible_account(request, account: dict) -> dict:
    """OAuth tokens go to write-scope callers only (API.md § Accounts)."""
    return account if request[CALLER].scope == WRITE else without_tokens(account)


@routes.add("DELETE", "/v1/accounts/{provider}/{providerAccountId}", scope=WRITE, summary="Unlink an OAuth account",
            status=204, errors=(404,))
async def unlink_account(request):
    info = request.match_info
    await accounts.unlink_account(deps_of(request), info["provider"], info["providerAccountId"])
    return no_content()


@routes.add("PATCH", "/v1/accounts/{provider}/{providerAccountId}", scope=WRITE,
            summary="Replace an account's tokens (refresh-token rotation); fields left out are kept",
            body=AccountTokensPatch, answer=Account, errors=(404, 422))
async def update_account_tokens(request):
    patch = await read_body(request, AccountTokensPatch)
    info = request.match_info
    return json_response(await accounts.update_account_tokens(deps_of(request), info["provider"],
                                                              info["providerAccountId"], patch))
