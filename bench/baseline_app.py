"""The ceiling of this stack: a bare aiohttp + asyncpg handler, no auth, logging, metrics or validation.

    python bench/baseline_app.py --port P --database-url URL

Serves the benchmark's baselines (started by bench/run.py and bench/hot_path.py, once per database):
* GET /v1/users/{id}: W1's query (the user's columns by id), encoded as JSON (msgspec);
* POST /v1/sessions/lookup: W2's query (session and user by session token, the service's SQL), the JSON
  body read with msgspec, the answer encoded as {session, user};
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
LOOKUP_SESSION = ('SELECT s.id, s."sessionToken", s."userId", s.expires, u.id AS u_id, u.email AS u_email, '
                  'u."emailVerified" AS u_email_verified, u.name AS u_name, u.image AS u_image, u.role AS u_role, '
                  'u."createdAt" AS u_created_at, u."updatedAt" AS u_updated_at '
                  'FROM sessions s JOIN users u ON u.id = s."userId" WHERE s."sessionToken" = $1')
POOL = web.AppKey("pool", asyncpg.Pool)
encode = msgspec.json.Encoder().encode


async def get_user(request: web.Request) -> web.Response:
    row = await request.app[POOL].fetchrow(USER_BY_ID, request.match_info["id"])
    if row is None:
        return web.Response(status=404)
    return web.Response(body=encode(dict(row)), content_type="application/json")


async def lookup_session(request: web.Request) -> web.Response:
    token = msgspec.json.decode(await request.read())["sessionToken"]
    row = await request.app[POOL].fetchrow(LOOKUP_SESSION, token)
    if row is None:
        return web.Response(status=404)
    return web.Response(body=encode({
        "session": {"id": row["id"], "sessionToken": row["sessionToken"], "userId": row["userId"],
                    "expires": row["expires"]},
        "user": {"id": row["u_id"], "email": row["u_email"], "emailVerified": row["u_email_verified"],
                 "name": row["u_name"], "image": row["u_image"], "role": row["u_role"],
                 "createdAt": row["u_created_at"], "updatedAt": row["u_updated_at"]}}),
        content_type="application/json")


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
    app.router.add_post("/v1/sessions/lookup", lookup_session)
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
