"""Serving: one process, or N processes sharing the port (SO_REUSEPORT). SIGTERM drains and exits 0."""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import signal
import socket
from urllib.parse import urlsplit

from aiohttp import web

from . import tracing
from .app import VERSION, create_app
from .embedded import embedded_data_path, resolve_database_url
from .logs import setup_logging
from .migrate_errors import MigrateError
from .settings import Settings, SettingsError

SHUTDOWN_TIMEOUT = 20.0  # seconds in-flight requests get to finish after SIGTERM


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _freeze_startup_objects(_app) -> None:
    """After start-up (pools open, statements prepared): modules, routes and settings are never garbage.
    gc.freeze() moves them out of the collector's reach, so the full collections a busy process runs now
    and then walk only what was made since (bench/RESULTS.md: a full pass over start-up's ~57,000 objects
    was one of the few 70-100 ms pauses in a W1 run)."""
    gc.collect()
    gc.freeze()


class ServeError(MigrateError):
    """Serving cannot start (port in use, missing production settings); shown as one line."""


def check_serving_settings(settings: Settings) -> None:
    """In production the service needs its real database and its tokens; one line per missing one."""
    problems = []
    for name, url, schemes in (("DATABASE_URL", settings.database_url, ("postgresql", "postgres")),
                               ("DATABASE_READ_URL", settings.database_read_url, ("postgresql", "postgres")),
                               ("REDIS_URL", settings.redis_url, ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster"))):
        if url and urlsplit(url).scheme not in schemes:
            problems.append(f"{name} must be a {schemes[0]}:// URL, got scheme {urlsplit(url).scheme!r}")
    if settings.is_production:
        if not settings.database_url:
            problems.append("DATABASE_URL is required in production (the embedded database is for development only)")
        if not settings.service_tokens.strip():
            problems.append("SERVICE_TOKENS is required in production (without it every /v1 route answers 401)")
    if problems:
        raise SettingsError("\n".join(problems))


def _check_can_listen(host: str, port: int) -> None:
    """Bind once before starting (and before forking workers), so a port in use is one line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {(exc.strerror or str(exc)).lower()}") from None


def describe_database(settings: Settings, url: str) -> str:
    if not settings.database_url:
        return f"embedded in {embedded_data_path(settings.data_dir)}"
    parts = urlsplit(url)
    return f"{parts.hostname or 'local socket'}:{parts.port or 5432}{parts.path}"


def describe_cache(settings: Settings) -> str:
    if not settings.cache_enabled:
        return "off"
    if not settings.redis_url:
        return "in process"
    parts = urlsplit(settings.redis_url)
    return f"redis {parts.hostname or parts.path}" + (f":{parts.port}" if parts.port else "")


def _run_one(settings: Settings, host: str, port: int, reuse_port: bool, on_listening=None) -> None:
    _use_uvloop()
    setup_logging(settings.log_level)
    tracing.configure_from_env()  # per process: after a fork, the exporter's thread is this process's
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_objects)
    # run_app stops listening on SIGTERM/SIGINT, lets in-flight requests finish (shutdown_timeout),
    # runs the cleanup (pool closed) and returns: exit status 0. `print` is called once listening.
    try:
        web.run_app(app, host=host, port=port, reuse_port=reuse_port, access_log=None,
                    shutdown_timeout=SHUTDOWN_TIMEOUT, handle_signals=True,
                    print=(lambda _message: on_listening()) if on_listening else None)
    except OSError as exc:  # lost the race for the port after the check
        raise ServeError(f"cannot listen on {host}:{port}: {(exc.strerror or str(exc)).lower()}") from None
    finally:
        tracing.shutdown()  # the spans still buffered are sent


def serve(settings: Settings, host: str | None = None, port: int | None = None, workers: int = 1,
          announce: str | None = None) -> int:
    check_serving_settings(settings)
    host = host or settings.host
    port = port or settings.port
    tracing.validate_env()  # a bad OTEL_* value stops the start here, once, not in every worker
    _check_can_listen(host, port)
    # The embedded database is started here, in the process that outlives the workers: its exit (and
    # only its exit) stops it. Workers leave with os._exit and never own it.
    url = resolve_database_url(settings)
    start_line = (f"astrowellness-data {VERSION} serving on http://{host}:{port} "
                  f"(database {describe_database(settings, url)}, cache {describe_cache(settings)}"
                  + (f", {workers} workers" if workers > 1 else "") + ")")

    def listening():
        print(start_line, flush=True)
        if announce:
            print(announce, flush=True)

    settings = settings.replace(database_url=url)
    if workers <= 1:
        _run_one(settings, host, port, reuse_port=False, on_listening=listening)
        print("astrowellness-data stopped", flush=True)
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
    listening()

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
    print("astrowellness-data stopped", flush=True)
    return status


def dev_token(settings: Settings) -> str:
    """The development token, kept in the data folder so it survives restarts (readable by you only)."""
    path = embedded_data_path(settings.data_dir) / "dev-token"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = "dev-" + secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def dev(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    """Development: migrate (embedded PostgreSQL when DATABASE_URL is unset), then serve with a token."""
    from . import migrate
    from .migrate_cli import lock_policy

    settings = settings.replace(host=host or settings.host, port=port or settings.port)
    _check_can_listen(settings.host, settings.port)
    url = resolve_database_url(settings)
    applied = migrate.apply(url, settings.migrate_lock_timeout, policy=lock_policy(settings))
    print(f"migrations: {len(applied)} applied" if applied else "migrations: up to date", flush=True)
    token = None
    if not settings.service_tokens:
        token = dev_token(settings)
        settings = settings.replace(service_tokens=f"dev:{token}:write")
    settings = settings.replace(bcrypt_rounds=min(settings.bcrypt_rounds, 12))
    where = f"http://{settings.host}:{settings.port}"
    lines = []
    if token:
        lines.append(f"dev token: {token}")
        lines.append(f"try: curl -H 'Authorization: Bearer {token}' {where}/v1/users")
    return serve(settings, announce="\n".join(lines) or None)
