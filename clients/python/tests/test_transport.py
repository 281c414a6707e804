"""Errors, timeouts, connection reuse and retries — against the real service, and for the outage a
second real service whose database connection runs through a TCP relay the test cuts and restores."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

import aiohttp
import pytest
from astrowellness_data_client import (
    NO_RETRIES,
    DataClient,
    Forbidden,
    RetryPolicy,
    RouteNotFound,
    Timeout,
    TransportError,
    Unauthorized,
    Unavailable,
)
from astrowellness_data_client.transport import parse_retry_after
from conftest import env, unique_email

SERVICE_ROOT = Path(os.environ.get("AW_SERVICE_ROOT") or Path(__file__).resolve().parents[3])


class Tally:
    """Counts what the client did, through aiohttp's tracing hooks."""

    def __init__(self):
        self.requests: list[str] = []
        self.statuses: list[int] = []
        self.connections = 0
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._start)
        self.config.on_request_end.append(self._end)
        self.config.on_connection_create_end.append(self._connected)

    async def _start(self, session, context, params):
        self.requests.append(f"{params.method} {params.url.path}")

    async def _end(self, session, context, params):
        self.statuses.append(params.response.status)

    async def _connected(self, session, context, params):
        self.connections += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_wrong_token_read_token_and_wrong_base_url_raise_typed_problems(base_url, token):
    async with DataClient(base_url, "not-a-token") as client:
        with pytest.raises(Unauthorized) as caught:
            await client.users.list()
        assert caught.value.status == 401 and caught.value.code == "unauthorized" and caught.value.request_id
    async with DataClient(base_url, env("AW_READ_TOKEN")) as reader:
        assert (await reader.users.list(limit=1)).pagination.limit == 1
        with pytest.raises(Forbidden):
            await reader.users.create(email=unique_email())
    async with DataClient(base_url + "/api", token) as lost:
        # Not NotFound: a wrong base URL must not read as "no such user".
        with pytest.raises(RouteNotFound) as caught:
            await lost.users.get("someone")
        assert caught.value.code == "route_not_found"


async def test_connections_are_kept_and_reused(base_url, token):
    tally = Tally()
    async with DataClient(base_url, token, trace_configs=[tally.config]) as client:
        for _ in range(10):
            await client.ops.health()
        await asyncio.gather(*(client.cache.stats() for _ in range(4)))
    assert len(tally.requests) == 14
    assert tally.connections <= 4  # the ten in sequence shared one connection


@contextlib.asynccontextmanager
async def silent_server():
    """Accepts connections and never answers."""
    held = []

    async def hold(reader, writer):
        held.append(writer)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_timeouts_are_retried_only_for_idempotent_requests(token):
    async with silent_server() as url:
        tally = Tally()
        retry = RetryPolicy(attempts=2, backoff=0.01)
        async with DataClient(url, token, timeout=0.3, retry=retry, trace_configs=[tally.config]) as client:
            started = time.monotonic()
            with pytest.raises(Timeout):
                await client.users.get("u1")
            assert time.monotonic() - started < 5
            assert tally.requests == ["GET /v1/users/u1"] * 2
            tally.requests.clear()
            with pytest.raises(Timeout):
                await client.users.create(email=unique_email())
            assert tally.requests == ["POST /v1/users"]  # a create may have been applied: never repeated


async def test_refused_connections_are_retried_then_raised(token):
    tally = Tally()
    async with DataClient(f"http://127.0.0.1:{free_port()}", token, retry=RetryPolicy(attempts=3, backoff=0.01),
                          trace_configs=[tally.config]) as client:
        with pytest.raises(TransportError):
            await client.users.create(email=unique_email())
    assert tally.requests == ["POST /v1/users"] * 3  # nothing was sent: safe to try again


def test_retry_after_is_read_as_seconds_or_a_date():
    now = time.time()
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 28 <= parse_retry_after(formatdate(now + 30, usegmt=True), now=now) <= 30
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


class Relay:
    """A TCP relay to PostgreSQL that can be cut (listener closed, open connections dropped) and restored."""

    def __init__(self, target_host: str, target_port: int):
        # A directory as host is PostgreSQL's unix socket (the embedded server of a local run).
        self.socket_path = f"{target_host}/.s.PGSQL.{target_port}" if target_host.startswith("/") else None
        self.target = (target_host, target_port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self):
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self):
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _relay(self, client_reader, client_writer):
        try:
            if self.socket_path:
                upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.socket_path)
            else:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self.writers.update((client_writer, upstream_writer))

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))


@pytest.fixture
async def service_behind_relay():
    """A second real service whose database is reached through a Relay; Retry-After: 1 on 503."""
    from urllib.parse import parse_qs, urlsplit

    database = urlsplit(env("AW_DATABASE_URL"))
    socket_dir = parse_qs(database.query).get("host", [None])[0]
    relay = Relay(socket_dir or database.hostname or "127.0.0.1", database.port or 5432)
    await relay.start()
    port = free_port()
    credentials = database.username or "root"
    if database.password:
        credentials += f":{database.password}"
    relayed = database._replace(netloc=f"{credentials}@127.0.0.1:{relay.port}", query="").geturl()
    process_env = {**os.environ, "DATABASE_URL": relayed,
                   "SERVICE_TOKENS": "relay:relay-token:write", "RETRY_AFTER_SECONDS": "1", "POOL_MIN_SIZE": "1",
                   "POOL_ACQUIRE_TIMEOUT": "1", "CONNECT_TIMEOUT": "1", "REDIS_URL": "", "BCRYPT_ROUNDS": "4",
                   "SWEEP_INTERVAL_SECONDS": "0"}
    process = await asyncio.to_thread(
        subprocess.Popen, [sys.executable, "-m", "service", "serve", "--port", str(port)], cwd=SERVICE_ROOT,
        env=process_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as probe:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    async with probe.get(url + "/readyz") as r:
                        if r.status == 200:
                            break
                assert process.poll() is None, process.stderr.read()
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the service behind the relay did not become ready")
        yield url, relay
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        with contextlib.suppress(Exception):
            await relay.cut()


async def test_an_outage_is_ridden_out_by_idempotent_reads_and_not_by_creates(service_behind_relay):
    url, relay = service_behind_relay
    tally = Tally()
    restored = asyncio.Event()

    async def restore_after_first_503(session, context, params):
        if params.response.status == 503 and not restored.is_set():
            restored.set()
            await relay.start()

    tally.config.on_request_end.append(restore_after_first_503)
    async with DataClient(url, "relay-token", trace_configs=[tally.config],
                          retry=RetryPolicy(attempts=4, backoff=0.05)) as client:
        assert (await client.users.list(limit=1)).pagination.limit == 1

        # A create during the outage: answered 503 once, raised with the service's Retry-After, not repeated.
        await relay.cut()
        tally.requests.clear()
        with pytest.raises(Unavailable) as caught:
            await client.users.create(email=unique_email("outage"))
        assert caught.value.status == 503 and caught.value.retry_after == 1.0 and caught.value.request_id
        assert tally.requests == ["POST /v1/users"]

        # A list (uncached: it must reach the database) during the outage: retried after Retry-After,
        # by which time the relay is back.
        await relay.cut()
        restored.clear()
        tally.requests.clear()
        tally.statuses.clear()
        started = time.monotonic()
        page = await client.users.list(limit=1)
        assert page.pagination.limit == 1
        assert tally.statuses[0] == 503 and tally.statuses[-1] == 200
        assert time.monotonic() - started >= 0.9  # waited for Retry-After: 1

        # A Retry-After longer than the client will wait: raised at once.
        await relay.cut()
    async with DataClient(url, "relay-token", retry=RetryPolicy(attempts=5, max_retry_after=0.5)) as impatient:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await impatient.users.list(limit=1)
        assert time.monotonic() - started < 0.9
    async with DataClient(url, "relay-token", retry=NO_RETRIES) as once:
        report = await once.ops.ready()
        assert (report.status, report.database) == ("unavailable", "unavailable")
        with pytest.raises(Unavailable):
            await once.users.list()
