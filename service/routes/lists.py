"""List routes (API.md § Lists): each declares which fields may be filtered, sorted and selected."""

from __future__ import annotations

from ..deps import deps_of
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
from ..schemas import (
    Account,
    Authenticator,
    ChartType,
    ListPage,
    Role,
    Subscription,
    SubscriptionStatus,
    User,
)

routes = RouteTable("lists")

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

AUTHENTICATORS = ListSpec(
    table="authenticators",
    fields=(text("credentialID"), text("userId", filter=False), text("providerAccountId"),
            text("credentialPublicKey", filter=False, sort=False), integer("counter"),
            text("credentialDeviceType"), boolean("credentialBackedUp"), text("transports", nullable=True)),
    default_sort=("credentialID",),
    fixed_where=('"userId" = $1',),
    key="credentialID",
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


@routes.add("GET", "/v1/users", scope=READ, summary="List users", answer=ListPage, listing=USERS, item=User,
            errors=(400,))
async def list_users(request):
    return await _page(request, USERS)


@routes.add("GET", "/v1/users/{id}/accounts", scope=READ, summary="The user's OAuth accounts (a list)", answer=ListPage,
            listing=ACCOUNTS, item=Account, errors=(400, 404))
async def list_user_accounts(request):
    return await _page_of_user(request, ACCOUNTS, deps_of(request).cipher.decrypt_account)


async def _page_of_user(request, spec: ListSpec, transform=None):
    """A list of the user's rows; an unknown user is a 404 rather than an empty page."""
    user_id = request.match_info["id"]
    if not await deps_of(request).read_db.fetchval(Q.user_exists, user_id):
        raise not_found("user")
    return await _page(request, spec, [user_id], transform)


@routes.add("GET", "/v1/users/{id}/authenticators", scope=READ, summary="The user's WebAuthn authenticators (a list)",
            answer=ListPage, listing=AUTHENTICATORS, item=Authenticator, errors=(400, 404))
async def list_user_authenticators(request):
    return await _page_of_user(request, AUTHENTICATORS)


async def list_charts(request):
    """GET /v1/charts with list parameters (routed from routes.charts)."""
    return await _page(request, CHARTS)


@routes.add("GET", "/v1/subscriptions", scope=READ, summary="List subscriptions (by status, period end...)", answer=ListPage,
            listing=SUBSCRIPTIONS, item=Subscription, errors=(400,))
async def list_subscriptions(request):
    return await _page(request, SUBSCRIPTIONS)
