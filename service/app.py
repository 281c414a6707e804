"""create_app(settings): pools, cache, middlewares, routes, background tasks."""

from __future__ import annotations

import itertools
import os
import re
import time
import uuid

from aiohttp import web, web_response

from . import tracing
from .auth import Caller, caller_of, parse_service_tokens
from .deps import DEPS, METRICS, OPENAPI, SETTINGS
from .limits import CallerLimits, caller_limits_from
from .logs import log_access
from .metrics import Metrics
from .openapi import build_openapi
from .problems import problem_for
from .resources import open_deps
from .routes import accounts, authenticators, ops, sessions, users
from .routing import Route
from .settings import Settings

ROUTE_TABLES = (users.routes, accounts.routes, sessions.routes, ops.routes, authenticators.routes)
VERSION = "0.1.0"
_GOOD_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Request ids: a random per-process prefix and a counter; unique across processes and restarts, and
# cheaper than uuid4() per request. The prefix is chosen again in every forked child (`serve --workers`
# forks after this module is imported): otherwise all workers would hand out the same ids.
_REQUEST_ID_PREFIX = uuid.uuid4().hex[:12]
_request_counter = itertools.count(1)


def _new_request_id_prefix() -> None:
    global _REQUEST_ID_PREFIX, _request_counter
    _REQUEST_ID_PREFIX = uuid.uuid4().hex[:12]
    _request_counter = itertools.count(1)


os.register_at_fork(after_in_child=_new_request_id_prefix)


def new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter):012x}"


def all_routes(tables=None) -> list[Route]:
    return [route for table in (tables or app_route_tables()) for route in table.routes]


def app_route_tables():
    from .routes import (
        charts,
        docs,
        lists,
        natal_data,
        stripe_events,
        stripe_webhook,
        subscriptions,
    )

    return (*ROUTE_TABLES, subscriptions.routes, natal_data.routes, charts.routes, stripe_webhook.routes,
            lists.routes, docs.routes, stripe_events.routes)


def make_edge_middleware(metrics: Metrics, retry_after: int, tokens: dict[bytes, Caller], limits: CallerLimits):
    """The service's one middleware: the request id, the request's server span when tracing is on (its
    trace id goes into the access line and every problem answer), the caller (authenticated by auth.py,
    admitted within its budget by limits.py), every error answered as problem+json (problems.py), then the
    access line and the metrics, so errors are counted too. One middleware, not four: each aiohttp
    middleware layer is a partial and a coroutine on every request."""

    @web.middleware
    async def edge(request: web.Request, handler):
        started = time.perf_counter()
        sent = request.headers.get("X-Request-Id")
        request_id = sent if sent and _GOOD_REQUEST_ID.match(sent) else new_request_id()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        span = token = trace_id = None
        if tracing.TRACER is not None:  # with tracing off, this test and the one in `finally` are all it costs
            span, token, trace_id = tracing.start_server_span(request.method, route, request.headers)
        try:
            try:
                response = await limits.serve(request, handler, caller_of(tokens, request), route)
            except Exception as exc:  # noqa: BLE001 - every error becomes a problem answer
                response = problem_for(exc, request, request_id, retry_after, trace_id)
            response.headers["X-Request-Id"] = request_id
            status = response.status
            return response
        except web.HTTPException as exc:  # a redirect, re-raised by problem_for
            status = exc.status
            exc.headers["X-Request-Id"] = request_id
            raise
        finally:
            if span is not None:  # recorded (sampled)
                tracing.end_server_span(span, token, status)
            elapsed = time.perf_counter() - started
            metrics.observe_request(request.method, route, status, elapsed)
            # The path template, not the path: ids and e-mails in paths stay out of the logs.
            log_access(request_id, request.method, route, status, elapsed, trace_id)

    return edge


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    tokens = parse_service_tokens(settings.service_tokens)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[make_edge_middleware(metrics, settings.retry_after_seconds, tokens,
                                          caller_limits_from(settings))],
    )
    routes = all_routes()
    for route in routes:
        if route.method == "GET":  # HEAD too: the same answer without its body
            app.router.add_get(route.path, route.handler, allow_head=True)
        else:
            app.router.add_route(route.method, route.path, route.handler)
    app[METRICS] = metrics
    app[OPENAPI] = build_openapi(routes, VERSION)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources(settings, metrics))
    from .routes.charts import sweep_in_background

    app.cleanup_ctx.append(sweep_in_background)
    from .ops_gauges import gauges_in_background

    app.cleanup_ctx.append(gauges_in_background)
    from .stripe_api import stripe_api_context

    app.cleanup_ctx.append(stripe_api_context)
    return app


SERVER = "astrowellness-data"
# aiohttp would announce "Python/3.x aiohttp/3.x": versions help only an attacker. aiohttp fills in its
# Server header from this module constant (it has no public setting) when an answer sets none: every
# answer of the app, and those aiohttp writes before the app runs (a malformed HTTP request). No
# on_response_prepare signal: one more coroutine on every request, for the same header.
web_response.SERVER_SOFTWARE = SERVER


def _resources(settings: Settings, metrics: Metrics):
    async def resources(app: web.Application):
        async with open_deps(settings, wait_for_database=True) as deps:  # retried at start
            app[DEPS] = deps
            metrics.watch(deps)
            yield

    return resources
