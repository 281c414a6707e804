"""`python -m service migrate ...`: yoyo applies the SQL files in migrations/, step by step, safely.

Sub-commands: apply (default), status (alias list), rollback [--count N], adopt, new NAME, reset --yes,
unlock. Every failure a user can cause (bad URL, unreachable server, a blocked or failed statement,
a schema that does not match, drift) ends in MigrateError, which the command line prints as one line
(and a hint when one is known) and exits non-zero. Retry and index safety live in migration_safety,
checksums and drift in migration_ledger.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg
import psycopg
from psycopg.conninfo import make_conninfo
from yoyo import get_backend, read_migrations
from yoyo.exceptions import LockTimeout

from . import MIGRATIONS_DIR
from . import migration_ledger as ledger
from .catalog import SEED_ENUMS, SEED_TABLES, describe_differences, describe_schema
from .migrate_errors import MigrateError
from .migration_safety import (
    RETRYABLE,
    BlockerWatcher,
    LockPolicy,
    built_indexes,
    check_indexes,
    describe_database_error,
    drop_invalid_indexes,
    dropped_indexes,
    invalid_indexes,
    run_with_lock_retries,
)
from .queries import Q

__all__ = [
    "LockPolicy",
    "MigrateError",
    "adopt",
    "apply",
    "drift_report",
    "new_migration",
    "pending_sql",
    "reset",
    "rollback",
    "rollback_sql",
    "status",
    "unlock",
]

# The migrations that reproduce the old Prisma platform's schema, one table (or the enums) each.
# `adopt` marks exactly these as applied on a database Prisma created.
SEED_MIGRATIONS = (
    "0001_enums",
    "0002_users",
    "0003_accounts",
    "0004_sessions",
    "0005_verification_tokens",
    "0006_subscriptions",
    "0007_natal_data",
    "0008_chart_cache",
)
MIGRATION_TABLE = "_yoyo_migration"
LOCK_TABLE = "yoyo_lock"
# Tables `migrate` itself keeps (not the schema's): never granted to the app role, left by rollbacks.
BOOKKEEPING_TABLES = (MIGRATION_TABLE, "_yoyo_log", "_yoyo_version", LOCK_TABLE, ledger.LEDGER_TABLE)
DEFAULT_POLICY = LockPolicy()
# Every connection a migrate process opens carries this name, so the blocker watcher can find what
# waits, and `migrate unlock` can tell whether the process holding yoyo's lock is still connected.
APPLICATION_NAME = f"aw-migrate {os.getpid()}@{socket.gethostname()[:40]}"

# yoyo logs a failed step's undo with a traceback; the failure is reported as one line instead.
logging.getLogger("yoyo").addHandler(logging.NullHandler())
logging.getLogger("yoyo").propagate = False


def _check_url(database_url: str) -> None:
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgresql", "postgres") or not (parts.path or parts.query):
        raise MigrateError(
            f"DATABASE_URL must be a postgresql://user@host:port/dbname URL (got scheme {parts.scheme!r})"
        )


def _session_options(policy: LockPolicy) -> str:
    return f"-c lock_timeout={policy.step_lock_timeout_ms}"


def yoyo_url(database_url: str, policy: LockPolicy | None = None) -> str:
    """postgresql:// or postgres:// -> the psycopg 3 driver URL yoyo expects, with this process's
    application name and the short per-step lock_timeout on every connection yoyo opens."""
    _check_url(database_url)
    parts = urlsplit(database_url)
    extra = f"application_name={quote(APPLICATION_NAME)}"
    if policy is not None:
        extra += f"&options={quote(_session_options(policy))}"
    url = "postgresql+psycopg" + _single_netloc(database_url)[len(parts.scheme):]
    return url + ("&" if "?" in url else "?") + extra


def _single_netloc(database_url: str) -> str:
    """A multi-host URL (h1:p1,h2:p2, for failover) with its hosts moved to the query: yoyo's URL
    parser takes one host, so the list goes to libpq as its `host` and `port` parameters, which accept
    comma-separated lists. Other URLs unchanged."""
    parts = urlsplit(database_url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return database_url
    pairs = [h.rsplit(":", 1) if ":" in h else (h, "5432") for h in hosts.split(",")]
    query = "&".join(q for q in (parts.query, "host=" + ",".join(h for h, _ in pairs),
                                 "port=" + ",".join(p for _, p in pairs)) if q)
    netloc = f"{userinfo}@" if userinfo else ""
    return f"{parts.scheme}://{netloc}{parts.path}?{query}"


def conninfo(database_url: str, policy: LockPolicy | None = None) -> str:
    """The same connection settings as yoyo's, for the checks migrate runs on its own connections."""
    # libpq parses a multi-host URL itself (unlike yoyo): no rewriting needed here.
    _check_url(database_url)
    extra = {"application_name": APPLICATION_NAME, "connect_timeout": 10}
    if policy is not None:
        extra["options"] = _session_options(policy)
    return make_conninfo(database_url, **extra)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextmanager
def _backend(database_url: str, policy: LockPolicy | None = None):
    try:
        backend = get_backend(yoyo_url(database_url, policy), migration_table=MIGRATION_TABLE)
    except MigrateError:
        raise
    except Exception as exc:  # psycopg.OperationalError, yoyo.BadConnectionURI, ...
        raise MigrateError(f"cannot connect to the database: {_first_line(exc)}") from None
    try:
        yield backend
    except psycopg.Error as exc:  # a bookkeeping statement failed (the steps' errors are described)
        raise MigrateError(f"database error: {_first_line(exc)}") from None
    finally:
        backend.connection.close()


def _migrations(migrations_dir: Path | None = None, backend=None):
    """Every migration; with `backend`, less those whose `-- requires-extension: NAME` the server cannot
    install (the embedded PostgreSQL has no contrib modules): they stay pending until it can."""
    migrations = read_migrations(str(migrations_dir or MIGRATIONS_DIR))
    if backend is None:
        return migrations
    cursor = backend.connection.cursor()
    cursor.execute("SELECT name FROM pg_available_extensions")
    available = {row[0] for row in cursor.fetchall()}
    backend.connection.rollback()  # yoyo expects no transaction open
    kept = [m for m in migrations if set(_REQUIRES.findall(Path(m.path).read_text())) <= available]
    return migrations.__class__(kept, migrations.post_apply)


_REQUIRES = re.compile(r"^-- requires-extension: (\w+)", re.MULTILINE)


def _disk_files(migrations_dir: Path | None = None) -> dict[str, Path]:
    folder = migrations_dir or MIGRATIONS_DIR
    return {p.name[: -len(".sql")]: p for p in folder.glob("*.sql") if not p.name.endswith(".rollback.sql")}


@contextmanager
def _locked(backend, timeout: float):
    """yoyo's lock row: a second `migrate` waits here, then finds nothing left to do."""
    _warn_unless_owner(backend)
    try:
        with backend.lock(timeout=timeout):
            yield
    except LockTimeout:
        holder = _lock_holder_text(backend)
        raise MigrateError(f"another migrate holds the lock{holder} and did not finish within {timeout:g} s",
                           hint="if that process is dead (killed, its machine gone), run `migrate unlock`") from None


def _lock_holder_text(backend) -> str:
    try:
        row = backend.connection.execute(f"SELECT pid, ctime FROM {LOCK_TABLE} LIMIT 1").fetchone()
    except psycopg.Error:
        return ""
    return f" (pid {row[0]} since {row[1]:%Y-%m-%d %H:%M:%S} UTC)" if row else ""


def _cursor_execute(backend):
    return backend.connection.cursor().execute


def _warn_unless_owner(backend) -> None:
    """The app role may not create tables: warn before anything else; and when it may not even take
    migrate's lock (yoyo would retry that until MIGRATE_LOCK_TIMEOUT), stop at once."""
    user, can_create, can_lock = backend.connection.execute(
        "SELECT current_user, has_schema_privilege(current_schema(), 'CREATE'), "
        f"to_regclass('{LOCK_TABLE}') IS NULL OR has_table_privilege('{LOCK_TABLE}', 'INSERT')").fetchone()
    if not can_create:
        print(f"warning: migrate is running as role {user!r}, which cannot create objects in the schema; "
              "run it as the owner role (sql/admin/roles.sql)", file=sys.stderr, flush=True)
    if not can_lock:
        raise MigrateError(f"role {user!r} may not take migrate's lock (no INSERT on {LOCK_TABLE})",
                           hint="run migrate as the owner role (sql/admin/roles.sql), not the app role")


def _backfill_ledger(backend, migrations) -> None:
    """Migrations applied before checksums were kept get the checksums of today's files."""
    execute = _cursor_execute(backend)
    recorded = {r[0] for r in backend.connection.execute(f'SELECT migration_id FROM "{ledger.LEDGER_TABLE}"')}
    applied = set(backend.get_applied_migration_hashes())
    with backend.transaction():
        for m in migrations:
            if m.hash in applied and m.id not in recorded:
                ledger.record(execute, m.id, Path(m.path), backfilled=True)


def _keep_bookkeeping_private(backend) -> None:
    """Default privileges give the app role DML on every table the owner creates, yoyo's included; take
    it back, so the app can neither mark a migration applied nor break migrate's lock. Reading stays
    allowed: `doctor` and the schema_migrations_* gauges run as the app role and report what is applied."""
    grants = backend.connection.execute(
        """SELECT DISTINCT quote_ident(c.relname),
                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
           FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
           WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)
             AND a.grantee <> c.relowner AND pg_has_role(c.relowner, 'USAGE')
             AND a.privilege_type <> 'SELECT'""",
        (list(BOOKKEEPING_TABLES),),
    ).fetchall()
    if grants:
        with backend.transaction():
            for table, grantee in grants:
                backend.connection.execute(
                    f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {table} FROM {grantee}")


def _prepare(backend, migrations) -> None:
    backend.ensure_internal_schema_updated()
    with backend.transaction():
        ledger.ensure_ledger(_cursor_execute(backend))
    _keep_bookkeeping_private(backend)
    _backfill_ledger(backend, migrations)


def _apply_one(backend, migration, url: str, policy: LockPolicy, watcher: BlockerWatcher) -> None:
    """Apply one migration with lock retries; record it (and its checksums) only when its objects
    are valid."""
    migration.load()
    built = built_indexes(Path(migration.path).read_text())
    info = conninfo(url, policy)

    def record():
        backend.mark_one(migration, log=False)
        backend.log_migration(migration, "apply")
        ledger.record(_cursor_execute(backend), migration.id, Path(migration.path))

    def attempt():
        drop_invalid_indexes(info, built)
        try:
            if migration.use_transactions:
                # The change and its record commit together (yoyo's apply_one runs the steps on a
                # connection of their own and marks them afterwards): a migrate killed in between
                # left the change unrecorded, and every later run failed on "already exists".
                with backend.transaction():
                    migration.process_steps(backend, "apply")
                    record()
            else:
                backend.apply_one(migration, mark=False)
        except RETRYABLE:
            raise
        except psycopg.Error as exc:
            raise describe_database_error(migration.id, "apply", exc) from None

    run_with_lock_retries(attempt, f"applying {migration.id}", policy, watcher)
    if not migration.use_transactions:
        # CONCURRENTLY cannot run in a transaction: the record follows once the indexes are valid, and
        # a run killed before it finds the invalid leftovers and rebuilds them (drop_invalid_indexes).
        check_indexes(info, migration.id, built, [])
        with backend.transaction():
            record()


def _refuse_unsafe_rollbacks(database_url: str, chosen) -> None:
    """yoyo treats a missing rollback file as "nothing to undo" and would only unmark the migration,
    leaving its objects behind; a rollback edited since the migration was applied is not the undo that
    was reviewed. Both stop the rollback before anything runs."""
    changed = {m.id for m in drift_report(database_url).migrations if "rollback" in m.changed}
    for migration in chosen:
        if not ledger.rollback_path(Path(migration.path)).exists():
            raise MigrateError(f"{migration.id} has no rollback file on disk: nothing was rolled back",
                               hint="restore the .rollback.sql from the release that applied it")
        if migration.id in changed:
            raise MigrateError(f"the rollback of {migration.id} changed since it was applied: nothing was "
                               "rolled back", hint="restore the file from the release that applied it "
                                                   "(`migrate status` shows every change)")


def _rollback_one(backend, migration, url: str, policy: LockPolicy, watcher: BlockerWatcher) -> None:
    migration.load()
    undo = ledger.rollback_path(Path(migration.path))
    undo_sql = undo.read_text() if undo.exists() else ""
    # A rollback may rebuild an index (0021's brings 0012's back) with the same trap as a forward build:
    # a try cut off by lock_timeout leaves it INVALID, and IF NOT EXISTS would skip it on the next try.
    built, dropped = built_indexes(undo_sql), dropped_indexes(undo_sql)
    info = conninfo(url, policy)

    def attempt():
        drop_invalid_indexes(info, built)
        try:
            if migration.use_transactions:  # the undo and its record together, as in _apply_one
                with backend.transaction():
                    migration.process_steps(backend, "rollback")
                    backend.unmark_one(migration, log=False)
                    backend.log_migration(migration, "rollback")
                    ledger.forget(_cursor_execute(backend), migration.id)
            else:
                backend.rollback_one(migration)
        except RETRYABLE:
            raise
        except psycopg.Error as exc:
            raise describe_database_error(migration.id, "rollback", exc) from None

    run_with_lock_retries(attempt, f"rolling back {migration.id}", policy, watcher)
    if not migration.use_transactions:
        check_indexes(info, migration.id, built, dropped)
        with backend.transaction():
            ledger.forget(_cursor_execute(backend), migration.id)


def _invalid_not_rebuilt(report: ledger.DriftReport, pending) -> list[str]:
    """Invalid indexes that no pending migration rebuilds (those it rebuilds are its own leftovers)."""
    rebuilt = {name.strip('"') for m in pending for name in built_indexes(Path(m.path).read_text())}
    return [i for i in report.invalid_indexes if i.split(" on ")[0].strip('"') not in rebuilt]


def apply(database_url: str, lock_timeout: float = 600, *, policy: LockPolicy = DEFAULT_POLICY,
          allow_drift: bool = False) -> list[str]:
    """Apply every pending migration; returns the ids applied (empty when up to date).

    Refuses, changing nothing, when applied migrations changed or vanished on disk or an index is
    invalid (see `drift_report`), unless `allow_drift`.
    """
    with _backend(database_url, policy) as backend, _locked(backend, lock_timeout):
        migrations = _migrations()
        _prepare(backend, migrations)
        pending = backend.to_apply(_migrations(backend=backend))
        if not allow_drift:
            report = drift_report(database_url)
            blocking = ledger.DriftReport(
                [m for m in report.migrations if m.changed or m.status == "missing"],
                _invalid_not_rebuilt(report, pending),
            )
            if blocking.drift:
                raise MigrateError(f"refusing to migrate, the database has drifted from migrations/: "
                                   f"{blocking.summary()}",
                                   hint="see `migrate status`; `migrate --allow-drift` goes ahead anyway")
        with BlockerWatcher(conninfo(database_url), APPLICATION_NAME) as watcher:
            for migration in pending:
                _apply_one(backend, migration, database_url, policy, watcher)
        return [m.id for m in pending]


def drift_report(database_url: str, migrations_dir: Path | None = None) -> ledger.DriftReport:
    """Applied/pending migrations, checksums that changed, files missing on disk, invalid indexes.

    Read-only (creates nothing, takes no lock): safe to call from any tool, e.g. a health check.
    """
    try:
        with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
            applied, recorded = {}, {}
            if conn.execute("SELECT to_regclass(%s)", (f'"{MIGRATION_TABLE}"',)).fetchone()[0]:
                applied = dict(conn.execute(
                    f'SELECT migration_id, applied_at_utc FROM "{MIGRATION_TABLE}"').fetchall())
            if conn.execute("SELECT to_regclass(%s)", (f'"{ledger.LEDGER_TABLE}"',)).fetchone()[0]:
                recorded = {r[0]: (r[1], r[2]) for r in conn.execute(
                    f'SELECT migration_id, sha256, rollback_sha256 FROM "{ledger.LEDGER_TABLE}"')}
            invalid = invalid_indexes(conn)
    except psycopg.Error as exc:
        raise MigrateError(f"cannot connect to the database: {_first_line(exc)}") from None
    return ledger.build_report(_disk_files(migrations_dir), applied, recorded, invalid)


def status(database_url: str) -> list[ledger.MigrationState]:
    return drift_report(database_url).migrations


def pending_sql(database_url: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(id, SQL) of each migration `apply` would run, in order, without running anything; and, as
    "<id> waits for extension <name>" lines, the pending ones `apply` leaves for a server that can
    install their extension (see `_migrations`)."""
    files = _disk_files()
    every = _migrations()
    with _backend(database_url) as backend:
        runnable = {m.id for m in _migrations(backend=backend)}
    order = [m.id for m in every]  # yoyo's order (dependencies first)
    pending = {m.id for m in drift_report(database_url).pending}
    waiting = [f"{i} waits for extension {', '.join(_REQUIRES.findall(files[i].read_text()))}"
               for i in order if i in pending and i not in runnable]
    return [(i, files[i].read_text()) for i in order if i in pending and i in runnable], waiting


def _rollback_choice(backend, count: int):
    migrations = _migrations()
    applicable = backend.to_rollback(migrations)
    return migrations.__class__(list(applicable)[:count], migrations.post_apply)


def rollback_sql(database_url: str, count: int = 1) -> list[tuple[str, str]]:
    """(id, rollback SQL) of what `rollback --count N` would run, in its order (yoyo's: migration order
    reversed, not applied time), without running anything."""
    files = _disk_files()
    with _backend(database_url) as backend:
        chosen = [m.id for m in _rollback_choice(backend, count)]
    return [(i, ledger.rollback_path(files[i]).read_text()) for i in chosen]


_DROPS = re.compile(
    r"\bDROP\s+(TABLE|TYPE|FUNCTION|TRIGGER|VIEW|MATERIALIZED\s+VIEW|INDEX(?:\s+CONCURRENTLY)?|COLUMN)"
    r"\s+(?:IF\s+EXISTS\s+)?((?:\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:\.(?:\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_]*))?)", re.IGNORECASE)


def what_rollback_drops(migration_ids: list[str]) -> list[str]:
    """'table "users"', 'type "Role"', ...: read from the rollback files, for the production guard."""
    files = _disk_files()
    found = []
    for migration_id in migration_ids:
        undo = ledger.rollback_path(files[migration_id]) if migration_id in files else None
        text = re.sub(r"--[^\n]*", "", undo.read_text()) if undo and undo.exists() else ""
        for kind, name in _DROPS.findall(text):
            found.append(f"{kind.split()[0].lower()} {name}")
    return found


def _production_guard(action: str, ids: list[str], is_production: bool, confirmed: bool) -> None:
    if not is_production or confirmed or (action == "rollback" and not ids):
        return
    drops = what_rollback_drops(ids)
    raise MigrateError(
        f"refusing to {action} in production: it would undo {', '.join(ids)} and drop "
        + (", ".join(drops) if drops else "nothing it names") + ", with their data",
        hint=f"take a backup first; then run `migrate {action} ... --confirm-production` to go ahead",
    )


def rollback(database_url: str, count: int = 1, lock_timeout: float = 600, *,
             policy: LockPolicy = DEFAULT_POLICY, is_production: bool = False,
             confirm_production: bool = False) -> list[str]:
    """Roll back the `count` most recently applied migrations; returns their ids (may be fewer)."""
    if count < 1:
        raise MigrateError("--count must be at least 1")
    with _backend(database_url, policy) as backend, _locked(backend, lock_timeout):
        chosen = _rollback_choice(backend, count)
        _production_guard("rollback", [m.id for m in chosen], is_production, confirm_production)
        _refuse_unsafe_rollbacks(database_url, chosen)
        _prepare(backend, _migrations())
        with BlockerWatcher(conninfo(database_url), APPLICATION_NAME) as watcher:
            for migration in chosen:
                _rollback_one(backend, migration, database_url, policy, watcher)
        return [m.id for m in chosen]


def reset(database_url: str, is_production: bool, confirmed: bool, lock_timeout: float = 600, *,
          policy: LockPolicy = DEFAULT_POLICY, confirm_production: bool = False) -> None:
    if not confirmed:
        raise MigrateError("reset drops every table and its data; run `migrate reset --yes` to confirm")
    with _backend(database_url, policy) as backend, _locked(backend, lock_timeout):
        migrations = _migrations()
        everything = backend.to_rollback(migrations)
        _production_guard("reset", [m.id for m in everything], is_production, confirm_production)
        _prepare(backend, migrations)
        with BlockerWatcher(conninfo(database_url), APPLICATION_NAME) as watcher:
            for migration in everything:
                _rollback_one(backend, migration, database_url, policy, watcher)
            for migration in backend.to_apply(_migrations(backend=backend)):
                _apply_one(backend, migration, database_url, policy, watcher)


def unlock(database_url: str) -> str:
    """Remove yoyo's lock row left by a migrate that died; refuse while its process is connected."""
    try:
        with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
            if not conn.execute("SELECT to_regclass(%s)", (LOCK_TABLE,)).fetchone()[0]:
                return "no migrate lock is held"
            rows = conn.execute(f"SELECT pid, ctime FROM {LOCK_TABLE}").fetchall()
            if not rows:
                return "no migrate lock is held"
            for pid, since in rows:
                alive = conn.execute(
                    "SELECT pid, application_name, coalesce(host(client_addr), 'local socket'), backend_start "
                    "FROM pg_stat_activity WHERE application_name LIKE %s LIMIT 1",
                    (f"aw-migrate {pid}@%",),
                ).fetchone()
                if alive:
                    raise MigrateError(
                        f"refusing to unlock: the migrate holding the lock is alive ({alive[1]}, connected "
                        f"from {alive[2]} as backend pid {alive[0]} since {alive[3]:%Y-%m-%d %H:%M:%S %Z})",
                        hint="wait for it to finish, or stop that process first",
                    )
            conn.execute(f"DELETE FROM {LOCK_TABLE} WHERE pid = ANY(%s)", ([r[0] for r in rows],))
            return "removed the lock of " + ", ".join(
                f"pid {pid} (taken {since:%Y-%m-%d %H:%M:%S} UTC)" for pid, since in rows)
    except psycopg.Error as exc:
        raise MigrateError(f"cannot connect to the database: {_first_line(exc)}") from None


def adopt(database_url: str, lock_timeout: float = 600, *, policy: LockPolicy = DEFAULT_POLICY) -> list[str]:
    """Take over a database the old Prisma platform created.

    When the seven seed tables are present and yoyo has no history, check that their schema is exactly
    what the seed migrations create, mark those as applied without running them, then apply the rest.
    Refuses, listing every difference, when the schema does not match.
    """
    with _backend(database_url, policy) as backend, _locked(backend, lock_timeout):
        migrations = _migrations()
        if backend.get_applied_migration_hashes():
            raise MigrateError("this database already has migration history; run `migrate` instead")
        differences = asyncio.run(_seed_schema_differences(database_url))
        if differences:
            raise MigrateError(
                "the database does not match the seed schema, nothing was changed:\n"
                + "\n".join(differences)
            )
        _prepare(backend, migrations)
        seed = [m for m in migrations if m.id in SEED_MIGRATIONS]
        with backend.transaction():
            for m in seed:
                backend.mark_one(m)
                ledger.record(_cursor_execute(backend), m.id, Path(m.path))
        pending = backend.to_apply(_migrations(backend=backend))
        with BlockerWatcher(conninfo(database_url), APPLICATION_NAME) as watcher:
            for migration in pending:
                _apply_one(backend, migration, database_url, policy, watcher)
        return [m.id for m in pending]


async def _seed_schema_differences(database_url: str) -> list[str]:
    conn = await connect(database_url)
    try:
        schema = await conn.fetchval(Q.catalog_current_schema)
        present = {r["name"] for r in await conn.fetch(Q.catalog_tables, schema)}
        missing = [t for t in SEED_TABLES if t not in present]
        if missing:
            return [f"  missing table: {t}" for t in missing]
        actual = await describe_schema(conn, schema, SEED_TABLES, SEED_ENUMS)
        expected = await _expected_seed_schema(conn)
        return describe_differences(expected, actual)
    finally:
        await conn.close()


async def _expected_seed_schema(conn: asyncpg.Connection) -> set[str]:
    """Run the seed migrations in a scratch schema inside a transaction that is rolled back."""
    scratch = "adopt_check"
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(f'CREATE SCHEMA "{scratch}"')
        await conn.execute(f'SET LOCAL search_path TO "{scratch}"')
        for migration_id in SEED_MIGRATIONS:
            await conn.execute((MIGRATIONS_DIR / f"{migration_id}.sql").read_text())
        return await describe_schema(conn, scratch, SEED_TABLES, SEED_ENUMS)
    finally:
        await tx.rollback()


async def connect(database_url: str, **kwargs) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(database_url, timeout=10, **kwargs)
    except (OSError, asyncpg.PostgresError, ValueError) as exc:
        raise MigrateError(f"cannot connect to the database: {exc}") from None


def new_migration(name: str) -> tuple[str, str]:
    """Write the next numbered migration pair with a header to fill in; returns both paths."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise MigrateError("give the migration a name of letters or digits, e.g. `migrate new add_user_locale`")
    numbers = [int(p.name[:4]) for p in MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")]
    previous = sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")
                      if not p.name.endswith(".rollback.sql"))
    migration_id = f"{max(numbers, default=0) + 1:04d}_{slug}"
    forward = MIGRATIONS_DIR / f"{migration_id}.sql"
    backward = MIGRATIONS_DIR / f"{migration_id}.rollback.sql"
    depends = f"-- depends: {previous[-1]}\n" if previous else ""
    forward.write_text(
        f"-- {migration_id[:4]} {slug.replace('_', ' ')}: WHAT this migration does.\n"
        "-- Why: WHY it is needed. Service-owned changes only: never alter the seed's columns.\n"
        f"{depends}\n"
    )
    backward.write_text(f"-- Rollback of {migration_id[:4]}: HOW it is undone.\n\n")
    return str(forward), str(backward)
