"""asyncpg pools, type codecs, and the mapping of database failures to domain errors."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from . import tracing
from .connection_line import ConnectionLine
from .metrics import POOL_TIMEOUTS, POOL_WAIT_SECONDS, STATEMENT_SECONDS
from .queries import Q

log = logging.getLogger("service.db")

_PG_EPOCH = datetime(2000, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def encode_timestamp(value: datetime | str) -> tuple[int]:
    """Aware datetimes are stored as UTC (Prisma's convention for TIMESTAMP(3))."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return ((value - _PG_EPOCH) // _MICROSECOND,)


def decode_timestamp(value: tuple[int]) -> str:
    """TIMESTAMP(3) comes back as the API's RFC 3339 text: 2026-01-02T03:04:05.678Z."""
    return (_PG_EPOCH + timedelta(microseconds=value[0])).isoformat(timespec="milliseconds") + "Z"


def parse_timestamp(text: str) -> datetime:
    """The inverse of decode_timestamp, for code that compares times (cache TTLs)."""
    return datetime.fromisoformat(text)


_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


async def init_connection(conn: asyncpg.Connection) -> None:
    # jsonb's binary format is a version byte (1) and the JSON text: msgspec both ways, no str copies.
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", format="binary",
        encoder=lambda v: b"\x01" + _json_encode(v), decoder=lambda b: _json_decode(b[1:]),
    )
    await conn.set_type_codec(
        "timestamp", schema="pg_catalog", format="tuple",
        encoder=encode_timestamp, decoder=decode_timestamp,
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (RESET ALL, UNLISTEN *, ...): one round trip saved per
    request (14% of a user read in the profile). Safe because the service never changes session state:
    only SET LOCAL, transaction-scoped advisory locks, no LISTEN, cursors or temporary tables. asyncpg
    still rolls back a transaction left open before calling this."""


class DatabaseUnavailable(Exception):
    """The database cannot be reached or gave no connection in time: answered 503 with Retry-After."""


# Failures that mean "the database is not there", as opposed to "this statement was wrong".
UNAVAILABLE_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.QueryCanceledError,  # statement_timeout: the server is overloaded
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    # A multi-host DATABASE_URL (target_session_attrs=read-write) found no primary: a failover is on.
    asyncpg.TargetServerAttributeNotMatched,
)

# A write reached a server that is a standby now: the primary failed over while the pool kept a
# connection to the old one (demoted, not restarted). Answered 503; the pool's connections are expired.
DEMOTED_PRIMARY_ERRORS = (asyncpg.ReadOnlySQLTransactionError,)

_CONNECTION_FAILURES = (*UNAVAILABLE_ERRORS, asyncpg.InternalClientError, *DEMOTED_PRIMARY_ERRORS)
_NAMES_BY_SQL = {sql: name for name, sql in Q.items()}


def statement_name(sql: str) -> str:
    """The sql/ name of a statement; "other" for SQL that is not one (built at run time: list queries,
    partial updates; asyncpg's own catalogue queries): never the text."""
    return _NAMES_BY_SQL.get(sql, "other")


class InstrumentedConnection(asyncpg.Connection):
    """Every statement of the service's pools is timed by its sql/ name (db_statement_duration_seconds)
    and, with tracing on, gets a span named after it. `_execute` is where every fetch*/execute with
    arguments goes (the service runs no argument-less execute, which asyncpg sends another way); inside a
    transaction too, which a wrapper around Database's methods would miss."""

    __slots__ = ()

    async def _execute(self, query, args, limit, timeout, **kwargs):
        name = _NAMES_BY_SQL.get(query, "other")
        started = time.perf_counter()
        try:
            if tracing.TRACER is None or tracing.RECORDING.get() is None:  # off, or request not sampled
                return await super()._execute(query, args, limit, timeout, **kwargs)
            with tracing.client_span(name, "postgresql", **{"db.operation.name": name}):
                return await super()._execute(query, args, limit, timeout, **kwargs)
        finally:
            timer = _statement_timers.get(name) or _statement_timer(name)
            timer.observe(time.perf_counter() - started)


_statement_timers: dict = {}


def _statement_timer(name: str):
    # labels() converts the labels and builds a tuple: one child per statement name, looked up once.
    timer = _statement_timers.get(name)
    if timer is None:
        timer = _statement_timers[name] = STATEMENT_SECONDS.labels(name)
    return timer


def _log_query(record) -> None:
    name = statement_name(record.query)
    log.info("query", extra={"query": name, "ms": round(record.elapsed * 1000, 3)})


def _free_holders_of(pool) -> list | None:
    """The pool's free connection holders, as asyncpg 0.32 keeps them: the list of a LIFO queue whose
    end is what acquire() takes first, an open connection whenever one is free (the queue prefers them).
    None if asyncpg changed that: then every acquire is timed, as before (tests/test_hot_path.py notices)."""
    holders = getattr(getattr(pool, "_queue", None), "_queue", None)
    if not isinstance(holders, list) or not hasattr(asyncpg.pool.PoolConnectionHolder, "is_connected"):
        return None
    return holders


class Database:
    """A pool plus the few ways handlers use it; a connection is held only for one call or transaction."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float, name: str = "primary"):
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.name = name  # the pool label of its metrics: primary, replica
        self.waiting = 0  # callers waiting for a connection now (db_pool_waiting)
        self._wait_timer = POOL_WAIT_SECONDS.labels(name)
        self._timeouts = POOL_TIMEOUTS.labels(name)
        self._free_holders = _free_holders_of(pool)
        # One slot per connection, first come, first served (connection_line.py: asyncpg's own queue
        # lets newcomers take a released connection before the callers already waiting).
        self._line = ConnectionLine(pool.get_max_size(), acquire_timeout)

    @classmethod
    async def connect(cls, url: str, settings, min_size: int | None = None, name: str = "primary") -> Database:
        async def setup(conn):
            await init_connection(conn)
            if settings.log_queries:
                conn.add_query_logger(_log_query)

        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=settings.pool_min_size if min_size is None else min_size,
                max_size=settings.pool_max_size,
                statement_cache_size=settings.statement_cache_size,
                timeout=settings.connect_timeout,
                init=setup,
                reset=_keep_session,
                connection_class=InstrumentedConnection,
                server_settings={
                    "TimeZone": "UTC",
                    "statement_timeout": str(settings.statement_timeout_ms),
                    "application_name": "astrowellness-data",
                },
            )
        except UNAVAILABLE_ERRORS as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        return cls(pool, settings.pool_acquire_timeout, name)

    async def _acquire(self) -> asyncpg.Connection:
        started = time.perf_counter()
        self.waiting += 1
        line = self._line
        try:
            if not line.take_now():
                await line.take()  # in line behind the earlier callers; TimeoutError after acquire_timeout
            try:
                free = self._free_holders
                if free and free[-1].is_connected():
                    # An open connection is free (the slot says one is): taking it neither waits nor
                    # connects, so there is nothing to time out. asyncio.timeout costs a Timeout object
                    # and a loop timer set and cancelled on every call: ~5 % of a user read's work.
                    return await self.pool.acquire()
                # A connection to open first. asyncio.timeout rather than acquire(timeout=...), which
                # wraps every acquire in a new task.
                async with asyncio.timeout(self.acquire_timeout):
                    return await self.pool.acquire()
            except BaseException:
                line.give_back()
                raise
        except UNAVAILABLE_ERRORS as exc:
            if isinstance(exc, asyncio.TimeoutError):
                self._timeouts.inc()
            raise DatabaseUnavailable(f"no database connection: {type(exc).__name__}") from exc
        finally:
            self.waiting -= 1
            self._wait_timer.observe(time.perf_counter() - started)

    async def _raise_lost(self, conn: asyncpg.Connection, exc: Exception):
        """Re-raise a failure while using `conn`: as DatabaseUnavailable when the connection is gone."""
        if isinstance(exc, DEMOTED_PRIMARY_ERRORS):
            # Every pooled connection may point at the old primary: each is replaced when next
            # released or acquired, and new ones find the new primary through target_session_attrs.
            await self.pool.expire_connections()
            log.warning("write reached a read-only server (failover?); pool connections expired")
            raise DatabaseUnavailable("the database primary moved; retry") from exc
        if isinstance(exc, UNAVAILABLE_ERRORS) or (
            # The connection died in the middle of an operation (e.g. its transaction's rollback):
            # asyncpg reports a state error; on a closed connection that is an outage, not a bug.
            isinstance(exc, asyncpg.InternalClientError) and conn.is_closed()
        ):
            raise DatabaseUnavailable(f"database connection lost: {type(exc).__name__}") from exc
        raise exc

    @asynccontextmanager
    async def connection(self):
        conn = await self._acquire()
        try:
            yield conn
        except _CONNECTION_FAILURES as exc:
            await self._raise_lost(conn, exc)
        finally:
            await self._release(conn)

    async def _run(self, method: str, sql: str, args: tuple):
        """One statement on a pooled connection: the hot path, so no context-manager machinery."""
        conn = await self._acquire()
        try:
            return await getattr(conn, method)(sql, *args)
        except _CONNECTION_FAILURES as exc:
            await self._raise_lost(conn, exc)
        finally:
            await self._release(conn)

    async def _release(self, conn) -> None:
        # Releasing resets the connection; if the server went away meanwhile, asyncpg has already closed
        # it and the pool will open a new one. The request's own work is done (or already failed), so
        # this must not turn its answer into an error.
        try:
            await self.pool.release(conn)
        except (*UNAVAILABLE_ERRORS, asyncpg.InternalClientError) as exc:
            log.debug("connection dropped on release: %s", type(exc).__name__)
        finally:
            self._line.give_back()  # after the connection is back: the next in line finds it free

    @asynccontextmanager
    async def transaction(self):
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def fetchrow(self, sql: str, *args):
        return await self._run("fetchrow", sql, args)

    async def fetch(self, sql: str, *args):
        return await self._run("fetch", sql, args)

    async def fetchval(self, sql: str, *args):
        return await self._run("fetchval", sql, args)

    async def execute(self, sql: str, *args) -> str:
        return await self._run("execute", sql, args)

    async def ping(self) -> float:
        started = time.perf_counter()
        await self.fetchval(Q.ping)
        return time.perf_counter() - started

    async def close(self, timeout: float = 10) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), timeout)
        except TimeoutError:
            self.pool.terminate()


async def planned_rows(conn, sql: str, args) -> int:
    """The rows the planner expects `sql` to return (one EXPLAIN, no execution). The top node of the rows'
    own plan (as PostgREST does): under count(*) the child may be a Gather of partial aggregates whose
    "Plan Rows" is the number of workers, not of rows."""
    plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    plan = msgspec.json.decode(plan) if isinstance(plan, (str, bytes)) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


def affected_rows(status: str) -> int:
    """'DELETE 3' -> 3: asyncpg's command status of execute()."""
    return int(status.rsplit(" ", 1)[-1])


class ReplicaDatabase:
    """Reads on a read replica, falling back to the primary while the replica cannot be reached.

    After a failure the replica is left alone for `pause` seconds, so an outage costs one failed
    attempt per pause rather than one per request. A statement that fails part-way on the replica
    is retried once on the primary (reads only, so this is safe).
    """

    def __init__(self, replica: Database, primary: Database, pause: float = 5.0):
        self.replica = replica
        self.primary = primary
        self.pool = replica.pool
        self.pause = pause
        self._skip_until = 0.0
        self.fallbacks = 0

    def _replica_usable(self) -> bool:
        return time.monotonic() >= self._skip_until

    def _replica_failed(self, exc: Exception) -> None:
        self.fallbacks += 1
        self._skip_until = time.monotonic() + self.pause
        log.warning("read replica unavailable, reading from the primary: %s", exc)

    @asynccontextmanager
    async def connection(self):
        if self._replica_usable():
            try:
                conn = await self.replica._acquire()  # in line with the replica's other callers
            except DatabaseUnavailable as exc:
                self._replica_failed(exc)
            else:
                try:
                    yield conn
                    return
                except UNAVAILABLE_ERRORS as exc:
                    # Lost mid-read: this request answers 503; the next ones read from the primary.
                    self._replica_failed(exc)
                    raise DatabaseUnavailable(f"read replica connection lost: {type(exc).__name__}") from exc
                finally:
                    await self.replica._release(conn)
        async with self.primary.connection() as conn:
            yield conn

    async def _read(self, method: str, sql: str, *args):
        if self._replica_usable():
            try:
                return await getattr(self.replica, method)(sql, *args)
            except DatabaseUnavailable as exc:
                self._replica_failed(exc)
        return await getattr(self.primary, method)(sql, *args)

    async def fetchrow(self, sql: str, *args):
        return await self._read("fetchrow", sql, *args)

    async def fetch(self, sql: str, *args):
        return await self._read("fetch", sql, *args)

    async def fetchval(self, sql: str, *args):
        return await self._read("fetchval", sql, *args)

    async def close(self, timeout: float = 10) -> None:
        await self.replica.close(timeout)
