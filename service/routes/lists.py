"""List routes (API.md § Lists): each declares which fields may be filtered, sorted and selected."""

from __future__ import annotations

import weakref

from ..deps import deps_of
from ..listing import (
    CountCache,
    ListLimits,
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
from .accounts import visible_account

routes = RouteTable("lists")

USERS = ListSpec(
    table="users",
    # indexes: users_pkey, users_email_key, users_email_trgm_idx, users_name_trgm_idx (0031),
    # users_createdAt_id_idx (0011), users_role_createdAt_id_idx (0031), users_email_lower_pattern_idx (0035)
    fields=(text("id", indexed=True), text("email", indexed=True, trigram=True, lower_prefix_index=True),
            time("emailVerified", nullable=True), text("name", nullable=True, trigram=True),
            text("image", nullable=True, sort=False),
            enum("role", "Role", Role.__members__, indexed=True, index_gives_sort=False),
            time("createdAt", indexed=True), time("updatedAt")),
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
    bounded=True,  # one user's accounts: a handful of rows, any filter or sort is cheap
)

AUTHENTICATORS = ListSpec(
    table="authenticators",
    fields=(text("credentialID"), text("userId", filter=False), text("providerAccountId"),
            text("credentialPublicKey", filter=False, sort=False), integer("counter"),
            text("credentialDeviceType"), boolean("credentialBackedUp"), text("transports", nullable=True)),
    default_sort=("credentialID",),
    fixed_where=('"userId" = $1',),
    key="credentialID",
    bounded=True,  # one user's passkeys: a handful of rows, any filter or sort is cheap
)

CHARTS = ListSpec(
    table="chart_cache",
    # indexes: chart_cache_pkey, chart_cache_userId_chartType_idx, chart_cache_expiresAt_idx (0008),
    # chart_cache_createdAt_id_idx (0032)
    fields=(text("id", indexed=True), text("userId", nullable=True, indexed=True),
            enum("chartType", "ChartType", ChartType.__members__),
            text("chartData", filter=False, sort=False),
            text("interpretation", nullable=True, filter=False, sort=False),
            time("createdAt", indexed=True), time("expiresAt", indexed=True)),
    default_sort=("-createdAt",),
    fixed_where=("\"expiresAt\" > (now() AT TIME ZONE 'UTC')",),  # an expired entry is never returned
)

SUBSCRIPTIONS = ListSpec(
    table="subscriptions",
    # indexes: the pkey and the three unique keys (0006); subscriptions_createdAt_id_idx,
    # subscriptions_status_createdAt_id_idx, subscriptions_currentPeriodEnd_idx (0032)
    fields=(text("id", indexed=True), text("userId", indexed=True),
            text("stripeCustomerId", nullable=True, indexed=True),
            text("stripeSubscriptionId", nullable=True, indexed=True), text("stripePriceId", nullable=True),
            enum("status", "SubscriptionStatus", SubscriptionStatus.__members__, indexed=True,
                 index_gives_sort=False),
            time("currentPeriodEnd", nullable=True, indexed=True, nulls_first_index=True), boolean("cancelAtPeriodEnd"),
            time("createdAt", indexed=True), time("updatedAt")),
    default_sort=("-createdAt",),
)


# One count cache per database pool (tests run many apps, on different databases, in one process).
_COUNT_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def list_limits(settings) -> ListLimits:
    return ListLimits(count_cap=settings.list_count_cap, search_count_cap=settings.list_search_count_cap,
                      count_cache_seconds=settings.list_count_cache_seconds,
                      max_offset_rows=settings.list_max_offset_rows, max_filters=settings.list_max_filters,
                      max_pattern_length=settings.list_max_pattern_length,
                      expensive_timeout_ms=settings.list_expensive_timeout_ms)


async def _page(request, spec: ListSpec, fixed_args=(), transform=None, db=None, finish=None):
    """One list page; `transform` maps each row, `finish` (if any) the whole page before it is sent."""
    deps = deps_of(request)
    q = build_list_query(spec, request.query, list(fixed_args), list_limits(deps.settings))
    db = db or deps.read_db
    counts = _COUNT_CACHES.get(db)
    if counts is None:
        counts = _COUNT_CACHES[db] = CountCache()
    async with db.connection() as conn:
        page = await run_list_query(conn, q, transform, counts, deps.settings.retry_after_seconds)
    return json_response(finish(page) if finish else page)


@routes.add("GET", "/v1/users", scope=READ, summary="List users", answer=ListPage, listing=USERS, item=User,
            errors=(400,))
async def list_users(request):
    return await _page(request, USERS)


@routes.add("GET", "/v1/users/{id}/accounts", scope=READ, summary="The user's OAuth accounts (a list)", answer=ListPage,
            listing=ACCOUNTS, item=Account, errors=(400, 404))
async def list_user_accounts(request):
    deps = deps_of(request)
    token_errors = {}

    def visible(row):
        account = visible_account(request, deps.cipher.decrypt_account(row))
        if "tokenErrors" in account:  # kept aside: the list keeps only the declared fields
            token_errors[account["id"]] = account["tokenErrors"]
        return account

    def with_token_errors(page):
        for account in page["data"]:
            if account.get("id") in token_errors:
                account["tokenErrors"] = token_errors[account["id"]]
        return page

    return await _page_of_user(request, ACCOUNTS, visible, with_token_errors)


async def _page_of_user(request, spec: ListSpec, transform=None, finish=None):
    """A list of the user's rows; an unknown user is a 404 rather than an empty page."""
    user_id = request.match_info["id"]
    if not await deps_of(request).read_db.fetchval(Q.user_exists, user_id):
        raise not_found("user")
    return await _page(request, spec, [user_id], transform, finish=finish)


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
