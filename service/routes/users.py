"""Users routes (API.md § Users)."""

from __future__ import annotations

from ..data import users
from ..deps import deps_of
from ..problems import not_found
from ..routing import (
    READ,
    WRITE,
    RouteTable,
    cached_json,
    created,
    json_response,
    no_content,
    path_part,
    read_body,
)
from ..schemas import (
    Count,
    PasswordChange,
    PasswordIn,
    User,
    UserBatch,
    UserCreate,
    UserPatch,
    UserWithRelations,
    Valid,
)
from .accounts import visible_account
from .params import comma_list, comma_list_schema, reject_unknown_params

routes = RouteTable("users")


@routes.add("POST", "/v1/users", scope=WRITE, summary="Create a user (optionally with subscription and natal data)",
            body=UserCreate, answer=UserWithRelations, status=201, errors=(409, 422))
async def create_user(request):
    body = await read_body(request, UserCreate)
    user = await users.create_user(deps_of(request), body)
    return created(user, f"/v1/users/{path_part(user['id'])}")


@routes.add("POST", "/v1/users/batch", scope=WRITE, summary="Create many users in one statement",
            body=UserBatch, answer=Count, errors=(409, 422))
async def create_users_batch(request):
    body = await read_body(request, UserBatch)
    return json_response({"count": await users.create_users_batch(deps_of(request), body)})


@routes.add("GET", "/v1/users/{id}", scope=READ, summary="One user", answer=UserWithRelations, errors=(404,), selectable=True,
            query=(("select", "comma list of user fields to return", comma_list_schema(users.USER_FIELDS)),
                   ("include", "comma list of subscription, natalData, accounts",
                    comma_list_schema(users.INCLUDABLE))))
async def get_user(request):
    if not request.query_string:  # the hot path (W1): no query to parse and check
        return cached_json(await users.get_user(deps_of(request), request.match_info["id"]), "user")
    reject_unknown_params(request.query, ("select", "include"))
    select = comma_list(request.query, "select", users.USER_FIELDS)
    include = set(comma_list(request.query, "include", users.INCLUDABLE))
    deps, user_id = deps_of(request), request.match_info["id"]
    if include:
        user = await users.get_user_with_relations(deps, user_id, include)
        if user is None:
            raise not_found("user")
        if "accounts" in include:
            user["accounts"] = [visible_account(request, a) for a in user["accounts"]]
        if select:
            user = {k: v for k, v in user.items() if k in select or k in include}
        return json_response(user)
    found = await users.get_user(deps, user_id)
    if select and found is not None:
        return json_response(users.select_fields(found, select))
    return cached_json(found, "user")


@routes.add("GET", "/v1/users/by-email/{email}", scope=READ, summary="A user by e-mail (case-insensitive)",
            answer=User, errors=(404,))
async def get_user_by_email(request):
    return cached_json(await users.get_user_by_email(deps_of(request), request.match_info["email"]), "user")


@routes.add("GET", "/v1/users/by-account/{provider}/{providerAccountId}", scope=READ,
            summary="The user owning an OAuth account", answer=User, errors=(404,))
async def get_user_by_account(request):
    user = await users.get_user_by_account(deps_of(request), request.match_info["provider"],
                                           request.match_info["providerAccountId"])
    if user is None:
        raise not_found("user")
    return json_response(user)


@routes.add("PATCH", "/v1/users/{id}", scope=WRITE, summary="Change email, name, image, emailVerified or role",
            body=UserPatch, answer=User, errors=(404, 409, 422))
async def update_user(request):
    patch = await read_body(request, UserPatch)
    return json_response(await users.update_user(deps_of(request), request.match_info["id"], patch))


@routes.add("PUT", "/v1/users/{id}/password", scope=WRITE,
            summary="Set or change the password; ends the user's other sessions unless keepSessions",
            body=PasswordChange, status=204, errors=(404, 422))
async def set_password(request):
    body = await read_body(request, PasswordChange)
    await users.set_password(deps_of(request), request.match_info["id"], body.password,
                             keep_sessions=body.keepSessions, current_session=body.currentSessionToken)
    return no_content()


@routes.add("POST", "/v1/users/{id}/verify-password", scope=READ, summary="Check a password (constant time)",
            body=PasswordIn, answer=Valid, errors=(404, 422))
async def verify_password(request):
    body = await read_body(request, PasswordIn)
    valid = await users.verify_password(deps_of(request), request.match_info["id"], body.password)
    return json_response({"valid": valid})


@routes.add("DELETE", "/v1/users/{id}", scope=WRITE, summary="Delete a user and everything that is theirs",
            status=204, errors=(404,))
async def delete_user(request):
    await users.delete_user(deps_of(request), request.match_info["id"])
    return no_content()


@routes.add("DELETE", "/v1/users/{id}/sessions", scope=WRITE, summary="Sign the user out everywhere",
            answer=Count, errors=(404,))
async def delete_user_sessions(request):
    count = await users.delete_user_sessions(deps_of(request), request.match_info["id"])
    return json_response({"count": count})
