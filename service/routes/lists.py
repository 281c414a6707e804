"""List routes (API.md § Lists): each declares which fields may be filtered, sorted and selected."""

from __future__ import annotations

from ..deps import deps_of
from .accounts import visible_account
from ..listing import (
    ListSpec,
    boolean,
    build_list_query,
    enum,
    integer,
    run_list_query,
    text,
    time,
)
from ..problems import not_found
from ..queries import Q
from ..routing import READ, RouteTable, json_response
from ..schemas import ChartType, ListPage, Role, SubscriptionStatus

routes = RouteTable("lists")
LIST_QUERY = (("page", "1-based page (default 1)"), ("limit", "rows per page, 1..100 (default 10)"),
              ("sort", "fields, comma separated; -field for descending"), ("select", "fields to return"),
              ("cursor", "pagination.nextCursor of the previous page (keyset paging)"),
              ("count", "exact (default), estimated or none"))

USERS = ListSpec(
    table="users",
    fields=(text("id"), text("email"), time("emailVerified", nullable=True), text("name", nullable=True),
            text("image", nullable=True, sort=False), enum("role", "Role", Role.__members__),
            time("createdAt"), time("updatedAt")),
    default_sort=("-createdAt",),
)

ACCOUNTS = ListSpec(
    table="accounts",
    fields=(text("id"), text("userId", filter=False), text("type"), text("provider"), text("providerAccountId"),
            text("refresh_token", nullable=True, filter=False, sort=False),
            text("access_token", nullable=True, filter=False, sort=False),
            integer("expires_at", nullable=True), text("token_type", nullable=True),
            text("scope", nullable=True), text("id_token", nullable=True, filter=False, sort=False),
            text("session_state", nullable=True, filter=False, sort=False)),
    default_sort=("provider", "providerAccountId"),
    fixed_where=('"userId" = $1',),
)

CHARTS = ListSpec(
    table="chart_cache",
    fields=(text("id"), text("userId", nullable=True), enum("chartType", "ChartType", ChartType.__members__),
            text("chartData", filter=False, sort=False),
            text("interpretation", nullable=True, filter=False, sort=False),
            time("createdAt"), time("expiresAt")),
    default_sort=("-createdAt",),
    fixed_where=("\"expiresAt\" > (now() AT TIME ZONE 'UTC')",),  # an expired entry is never returned
)

SUBSCRIPTIONS = ListSpec(
    table="subscriptions",
    fields=(text("id"), text("userId"), text("stripeCustomerId", nullable=True),
            text("stripeSubscriptionId", nullable=True), text("stripePriceId", nullable=True),
            enum("status", "SubscriptionStatus", SubscriptionStatus.__members__),
            time("currentPeriodEnd", nullable=True), boolean("cancelAtPeriodEnd"),
            time("createdAt"), time("updatedAt")),
    default_sort=("-createdAt",),
)


async def _page(request, spec: ListSpec, fixed_args=(), transform=None, db=None):
    q = build_list_query(spec, request.query, list(fixed_args))
    deps = deps_of(request)
    async with (db or deps.read_db).connection() as conn:
        return json_response(await run_list_query(conn, q, transform))


@routes.add("GET", "/v1/users", scope=READ, summary="List users", answer=ListPage, query=LIST_QUERY, errors=(400,))
async def list_users(request):
    return await _page(request, USERS)


@routes.add("GET", "/v1/users/{id}/accounts", scope=READ, summary="The user's OAuth accounts (a list)", answer=ListPage,
            query=LIST_QUERY, errors=(400, 404))
async def list_user_accounts(request):
    deps = deps_of(request)
    user_id = request.match_info["id"]
    if not await deps.read_db.fetchval(Q.user_exists, user_id):
        raise not_found("user")
    token_errors = {}

    def visible(row):
        account = visible_account(request, deps.cipher.decrypt_account(row))
        if "tokenErrors" in account:  # kept aside: the list keeps only the declared fields
            token_errors[account["id"]] = account["tokenErrors"]
        return account

    q = build_list_query(ACCOUNTS, request.query, [user_id])
    async with deps.read_db.connection() as conn:
        page = await run_list_query(conn, q, visible)
    for account in page["data"]:
        if account.get("id") in token_errors:
            account["tokenErrors"] = token_errors[account["id"]]
    return json_response(page)


async def list_charts(request):
    """GET /v1/charts with list parameters (routed from routes.charts)."""
    return await _page(request, CHARTS)


@routes.add("GET", "/v1/subscriptions", scope=READ, summary="List subscriptions (by status, period end...)", answer=ListPage,
            query=LIST_QUERY, errors=(400,))
async def list_subscriptions(request):
    return await _page(request, SUBSCRIPTIONS)
