"""Chart cache routes (API.md § Chart cache) and the background sweep of expired rows."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from ..data import charts, stripe_events
from ..db import DatabaseUnavailable
from ..deps import DEPS, SETTINGS, deps_of
from ..problems import bad_request
from ..routing import READ, WRITE, RouteTable, cached_json, json_response, read_body
from ..schemas import Chart, ChartCreate, Count, ListPage
from . import lists

log = logging.getLogger("service.charts")
routes = RouteTable("charts")


@routes.add("POST", "/v1/charts", scope=WRITE, summary="Cache a computed chart (ttlSeconds or expiresAt)",
            body=ChartCreate, answer=Chart, status=201, errors=(422,))
async def create_chart(request):
    body = await read_body(request, ChartCreate)
    return json_response(await charts.create_chart(deps_of(request), body), 201)


@routes.add("GET", "/v1/charts/{id}", scope=READ, summary="An unexpired chart entry", answer=Chart, errors=(404,))
async def get_chart(request):
    return cached_json(await charts.get_chart(deps_of(request), request.match_info["id"]), "chart")


@routes.add("GET", "/v1/charts", scope=READ, answer=(Chart, ListPage), errors=(400, 404, 422),
            summary="With exactly userId and chartType: the newest unexpired entry. Otherwise a list "
                    "(see Lists: filter by userId, chartType, expiresAt, createdAt)",
            query=(("userId", "the user"), ("chartType", "a ChartType, any case")))
async def get_chart_for(request):
    query = request.query
    if set(query) != {"userId", "chartType"}:
        return await lists.list_charts(request)
    chart_type = charts.parse_chart_type(query["chartType"])
    return cached_json(await charts.get_chart_for(deps_of(request), query["userId"], chart_type), "chart")


@routes.add("DELETE", "/v1/charts", scope=WRITE, summary="Invalidate a user's charts (of one type, or all)",
            answer=Count, errors=(400, 422),
            query=(("userId", "the user (required)"), ("chartType", "optional: one type")))
async def delete_charts(request):
    user_id = request.query.get("userId")
    if not user_id:
        raise bad_request("userId", "is required")
    chart_type = request.query.get("chartType")
    chart_type = charts.parse_chart_type(chart_type) if chart_type else None
    return json_response({"count": await charts.delete_charts(deps_of(request), user_id, chart_type)})


@routes.add("POST", "/v1/charts/sweep", scope=WRITE, summary="Delete expired entries in bounded batches",
            answer=Count)
async def sweep(request):
    result = await charts.sweep_expired(deps_of(request))
    return json_response({"count": result.count})


async def sweep_in_background(app: web.Application):
    """cleanup_ctx: sweep every sweep_interval_seconds (0 turns it off) until the app stops."""
    interval = app[SETTINGS].sweep_interval_seconds

    async def loop():
        while True:
            await asyncio.sleep(interval)
            try:
                await charts.sweep_expired(app[DEPS])
                await stripe_events.prune_events(app[DEPS])  # Stripe event retention (issue 12)
            except DatabaseUnavailable as exc:
                log.warning("chart sweep skipped: %s", exc)
            except Exception:
                log.exception("chart sweep failed")

    task = asyncio.create_task(loop()) if interval > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
