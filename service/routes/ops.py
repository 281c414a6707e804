"""Operations: health, readiness, metrics, OpenAPI, and the cache's stats and invalidation."""

from __future__ import annotations

from aiohttp import web

from ..db import DatabaseUnavailable
from ..deps import METRICS, OPENAPI, deps_of
from ..metrics import CONTENT_TYPE
from ..routing import PUBLIC, READ, WRITE, RouteTable, json_response, read_body
from ..schemas import CacheInvalidate, CacheStats, Health

routes = RouteTable("operations")


@routes.add("GET", "/healthz", scope=PUBLIC, summary="The process is alive", answer=Health)
async def healthz(request):
    return json_response({"status": "ok"})


@routes.add("GET", "/readyz", scope=PUBLIC, summary="Ready when the database answers; reports Redis",
            answer=Health, errors=(503,))
async def readyz(request):
    deps = deps_of(request)
    try:
        await deps.db.ping()
        database = "ok"
    except (DatabaseUnavailable, OSError):
        database = "unavailable"
    redis = None
    if deps.cache.backend_name == "redis":
        redis = "ok" if await deps.cache.ping() else "degraded"
    ready = database == "ok"
    body = {"status": "ok" if ready else "unavailable", "database": database}
    if redis:
        body["redis"] = redis
    response = json_response(body, 200 if ready else 503)
    if not ready:
        response.headers["Retry-After"] = str(deps.settings.retry_after_seconds)
    return response


@routes.add("GET", "/metrics", scope=PUBLIC, summary="Prometheus metrics")
async def metrics(request):
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


@routes.add("GET", "/openapi.json", scope=PUBLIC, summary="This API as OpenAPI 3.1")
async def openapi(request):
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


@routes.add("GET", "/v1/cache/stats", scope=READ, summary="Cache hits, misses and errors since start",
            answer=CacheStats)
async def cache_stats(request):
    cache = deps_of(request).cache
    return json_response(cache.stats.as_dict(cache.backend_name))


@routes.add("POST", "/v1/cache/invalidate", scope=WRITE, summary="Drop cached entries by tag",
            body=CacheInvalidate, status=204)
async def cache_invalidate(request):
    body = await read_body(request, CacheInvalidate)
    await deps_of(request).cache.invalidate(tags=tuple(body.tags))
    return web.Response(status=204)
