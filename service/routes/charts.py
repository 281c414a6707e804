"""Chart cache routes (API.md § Chart cache) and the background sweep of expired rows."""

from __future__ import annotations

from aiohttp import web

from ..background import every
from ..data import charts, sweeps
from ..deps import DEPS, METRICS, deps_of
from ..problems import bad_request
from ..routing import (
    READ,
    WRITE,
    RouteTable,
    cached_json,
    created,
    json_response,
    path_part,
    read_body,
)
from ..schemas import Chart, ChartCreate, Count, ListPage
from . import lists

routes = RouteTable("charts")


@routes.add("POST", "/v1/charts", scope=WRITE, summary="Cache a computed chart (ttlSeconds or expiresAt)",
            body=ChartCreate, answer=Chart, status=201, errors=(422,))
async def create_chart(request):
    body = await read_body(request, ChartCreate)
    chart = await charts.create_chart(deps_of(request), body)
    return created(chart, f"/v1/charts/{path_part(chart['id'])}")


@routes.add("GET", "/v1/charts/{id}", scope=READ, summary="An unexpired chart entry", answer=Chart, errors=(404,))
async def get_chart(request):
    return cached_json(await charts.get_chart(deps_of(request), request.match_info["id"]), "chart")


@routes.add("GET", "/v1/charts", scope=READ, answer=(Chart, ListPage), errors=(400, 404, 422),
            summary="With exactly userId and chartType: the newest unexpired entry. Otherwise a list "
                    "(see Lists: filter by userId, chartType, expiresAt, createdAt)",
            query=(("userId", "the user (with chartType alone: the newest entry of the pair; in a list: a filter)"),
                   ("chartType", "a ChartType, any case (with userId alone: the pair; in a list: a filter)")),
            listing=lists.CHARTS, item=Chart)
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
    result = await charts.sweep_expired(deps_of(request), metrics=request.app[METRICS])
    return json_response({"count": result.count})


async def _sweep(app: web.Application, _round: int) -> None:
    await sweeps.sweep_all(app[DEPS], app[METRICS])


# cleanup_ctx: sweep every sweep_interval_seconds (0 turns it off) until the app stops.
sweep_in_background = every("sweep_interval_seconds", _sweep, "chart sweep")
