"""create_app(settings): pools, cache, middlewares, routes, background tasks."""

from __future__ import annotations

import itertools
import re
import time
import uuid

from aiohttp import web

from .auth import make_auth_middleware, parse_service_tokens
from .deps import DEPS, METRICS, OPENAPI, REQUEST_ID, SETTINGS
from .logs import log_access
from .metrics import Metrics
from .openapi import build_openapi
from .problems import problem_for
from .resources import open_deps
from .routes import accounts, ops, sessions, users
from .routing import Route
from .settings import Settings

ROUTE_TABLES = (users.routes, accounts.routes, sessions.routes, ops.routes)
VERSION = "0.1.0"
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Request ids: a random per-process prefix and a counter; unique across processes and restarts, and
# cheaper than uuid4() (one os.urandom call per request).
_REQUEST_ID_PREFIX = uuid.uuid4().hex[:12]
_request_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter):012x}"


def all_routes(tables=None) -> list[Route]:
    return [route for table in (tables or app_route_tables()) for route in table.routes]


def app_route_tables():
    from .routes import charts, lists, natal_data, stripe_events, stripe_webhook, subscriptions

    return (*ROUTE_TABLES, subscriptions.routes, natal_data.routes, charts.routes, stripe_webhook.routes,
            lists.routes, stripe_events.routes)


def make_edge_middleware(metrics: Metrics, retry_after: int):
    """Around everything else: the request id, every error answered as problem+json (problems.py),
    then the access line and the metrics, so errors are counted too. One middleware, not three: each
    aiohttp middleware layer costs a wrapper call on every request."""

    @web.middleware
    async def edge(request: web.Request, handler):
        started = time.perf_counter()
        sent = request.headers.get("X-Request-Id")
        request_id = sent if sent and _GOOD_REQUEST_ID.match(sent) else new_request_id()
        request[REQUEST_ID] = request_id
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            try:
                response = await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error becomes a problem answer
                response = problem_for(exc, request, request_id, retry_after)
            status = response.status
            response.headers["X-Request-Id"] = request_id
            return response
        except web.HTTPException as exc:  # a redirect, re-raised by problem_for
            status = exc.status
            exc.headers["X-Request-Id"] = request_id
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics.observe_request(request.method, route, status, elapsed)
            # The path template, not the path: ids and e-mails in paths stay out of the logs.
            log_access(request_id, request.method, route, status, elapsed)

    return edge


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    tokens = parse_service_tokens(settings.service_tokens)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            make_edge_middleware(metrics, settings.retry_after_seconds),
            make_auth_middleware(tokens),
        ],
    )
    routes = all_routes()
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler)
    app[METRICS] = metrics
    app[OPENAPI] = build_openapi(routes, VERSION)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources(settings, metrics))
    from .routes.charts import sweep_in_background

    app.cleanup_ctx.append(sweep_in_background)
    from .stripe_api import stripe_api_context

    app.cleanup_ctx.append(stripe_api_context)
    return app


def _resources(settings: Settings, metrics: Metrics):
    async def resources(app: web.Application):
        async with open_deps(settings) as deps:
            app[DEPS] = deps
            metrics.watch(deps)
            yield

    return resources
