"""The ceiling of this stack: a bare aiohttp + asyncpg handler, no auth, logging, metrics or validation.

    python bench/baseline_app.py --port P --database-url URL

Serves the benchmark's two baselines (started by bench/run.py, once per database):
* GET /v1/users/{id}: W1's query (the user's columns by id), encoded as JSON (msgspec);
* GET /v1/users?page=N: the lists baseline of issue 5 - what the seed's query builder did: a plain
  `ORDER BY "createdAt" DESC, id DESC LIMIT 20 OFFSET (N-1)*20` page plus a `COUNT(*)` for its total,
  meant to run on a database with only the seed migrations (no index on "createdAt").
Same event loop (uvloop when installed, as the service), same pool size (10) as the service's defaults.
"""

from __future__ import annotations

import argparse
import asyncio

import asyncpg
import msgspec
from aiohttp import web

USER_BY_ID = ('SELECT id, email, "emailVerified", name, image, role, "createdAt", "updatedAt" '
              'FROM users WHERE id = $1')
PAGE = ('SELECT id, email, "emailVerified", name, image, role, "createdAt", "updatedAt" '
        'FROM users ORDER BY "createdAt" DESC, id DESC LIMIT 20 OFFSET $1')
COUNT = "SELECT count(*) FROM users"
POOL = web.AppKey("pool", asyncpg.Pool)
encode = msgspec.json.Encoder().encode


async def get_user(request: web.Request) -> web.Response:
    row = await request.app[POOL].fetchrow(USER_BY_ID, request.match_info["id"])
    if row is None:
        return web.Response(status=404)
    return web.Response(body=encode(dict(row)), content_type="application/json")


async def list_users(request: web.Request) -> web.Response:
    page = int(request.query.get("page", "1"))
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(PAGE, (page - 1) * 20)
        total = await conn.fetchval(COUNT)
    return web.Response(body=encode({"data": [dict(r) for r in rows], "total": total}),
                        content_type="application/json")


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(database_url: str) -> web.Application:
    app = web.Application()

    async def pool(app):
        app[POOL] = await asyncpg.create_pool(database_url, min_size=2, max_size=10)
        yield
        await app[POOL].close()

    app.cleanup_ctx.append(pool)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/users/{id}", get_user)
    app.router.add_get("/v1/users", list_users)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(make_app(args.database_url), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
