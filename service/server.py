"""Serving: one process, or N processes sharing the port (SO_REUSEPORT). SIGTERM drains and exits 0."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal

from aiohttp import web

from .app import create_app
from .logs import setup_logging
from .settings import Settings

SHUTDOWN_TIMEOUT = 20.0  # seconds in-flight requests get to finish after SIGTERM


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _run_one(settings: Settings, host: str, port: int, reuse_port: bool, announce: str | None = None) -> None:
    _use_uvloop()
    setup_logging(settings.log_level)
    app = create_app(settings)
    if announce:
        async def show(_app):
            print(announce, flush=True)

        app.on_startup.append(show)
    # run_app stops listening on SIGTERM/SIGINT, lets in-flight requests finish (shutdown_timeout),
    # runs the cleanup (pool closed) and returns: exit status 0.
    web.run_app(app, host=host, port=port, reuse_port=reuse_port, access_log=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT, print=None, handle_signals=True)


def serve(settings: Settings, host: str | None = None, port: int | None = None, workers: int = 1,
          announce: str | None = None) -> int:
    host = host or settings.host
    port = port or settings.port
    if workers <= 1:
        _run_one(settings, host, port, reuse_port=False, announce=announce)
        return 0
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            from .ids import reset_after_fork

            reset_after_fork()
            try:
                _run_one(settings, host, port, reuse_port=True)
            finally:
                os._exit(0)
        children.append(pid)
    if announce:
        print(announce, flush=True)

    def forward(signum, _frame):
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for child in children:
        while True:
            try:
                _, code = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        status = status or os.waitstatus_to_exitcode(code)
    return status


def dev(settings: Settings) -> int:
    """Development: migrate (embedded PostgreSQL when DATABASE_URL is unset), then serve with a token."""
    from . import migrate
    from .embedded import resolve_database_url

    url = resolve_database_url(settings)
    from .migrate_cli import lock_policy

    applied = migrate.apply(url, settings.migrate_lock_timeout, policy=lock_policy(settings))
    print(f"migrations: {len(applied)} applied" if applied else "migrations: up to date", flush=True)
    token = None
    if not settings.service_tokens:
        token = "dev-" + secrets.token_urlsafe(18)
        settings = settings.replace(service_tokens=f"dev:{token}:write")
    settings = settings.replace(database_url=url, bcrypt_rounds=min(settings.bcrypt_rounds, 12))
    where = f"http://{settings.host}:{settings.port}"
    lines = [f"serving on {where}  (database: {'embedded' if not os.environ.get('DATABASE_URL') else 'DATABASE_URL'},"
             f" cache: {'redis' if settings.redis_url else 'in process'})"]
    if token:
        lines.append(f"dev token: {token}")
        lines.append(f"try: curl -H 'Authorization: Bearer {token}' {where}/v1/users")
    return serve(settings, announce="\n".join(lines))


