"""`python -m service migrate ...`: yoyo applies the SQL files in migrations/.

Sub-commands: apply (default), list, rollback [--count N], adopt, new NAME, reset --yes.
Every failure a user can cause (bad URL, unreachable server, schema that does not match) ends in
MigrateError, which the command line prints as one line and exits non-zero.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
from yoyo import get_backend, read_migrations
from yoyo.exceptions import LockTimeout

from . import MIGRATIONS_DIR
from .catalog import SEED_ENUMS, SEED_TABLES, describe_differences, describe_schema
from .queries import Q

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


class MigrateError(Exception):
    """A problem the operator must fix; its message is shown as is."""


@dataclass
class MigrationStatus:
    id: str
    applied: bool


def yoyo_url(database_url: str) -> str:
    """postgresql:// or postgres:// -> the psycopg 3 driver URL yoyo expects."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgresql", "postgres") or not (parts.path or parts.query):
        raise MigrateError(
            f"DATABASE_URL must be a postgresql://user@host:port/dbname URL (got scheme {parts.scheme!r})"
        )
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if "," in hosts:
        # Multi-host (h1:p1,h2:p2, for failover): yoyo's URL parser takes one host, so the list goes
        # to libpq as its `host` and `port` parameters, which accept comma-separated lists.
        pairs = [h.rsplit(":", 1) if ":" in h else (h, "5432") for h in hosts.split(",")]
        query = "&".join(q for q in (parts.query, "host=" + ",".join(h for h, _ in pairs),
                                     "port=" + ",".join(p for _, p in pairs)) if q)
        netloc = f"{userinfo}@" if userinfo else ""
        return f"postgresql+psycopg://{netloc}{parts.path}?{query}"
    return "postgresql+psycopg" + database_url[len(parts.scheme):]


@contextmanager
def _backend(database_url: str):
    try:
        backend = get_backend(yoyo_url(database_url), migration_table=MIGRATION_TABLE)
    except MigrateError:
        raise
    except Exception as exc:  # psycopg.OperationalError, yoyo.BadConnectionURI, ...
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MigrateError(f"cannot connect to the database: {first_line}") from None
    try:
        yield backend
    finally:
        backend.connection.close()


def _migrations():
    return read_migrations(str(MIGRATIONS_DIR))


@contextmanager
def _locked(backend, timeout: int):
    """yoyo's lock row: a second `migrate` waits here, then finds nothing left to do."""
    try:
        with backend.lock(timeout=timeout):
            yield
    except LockTimeout as exc:
        raise MigrateError(f"another migration holds the lock: {exc}") from None


def apply(database_url: str, lock_timeout: int = 600) -> list[str]:
    """Apply every pending migration; returns the ids applied (empty when up to date)."""
    with _backend(database_url) as backend, _locked(backend, lock_timeout):
        pending = backend.to_apply(_migrations())
        backend.apply_migrations(pending)
        return [m.id for m in pending]


def status(database_url: str) -> list[MigrationStatus]:
    with _backend(database_url) as backend:
        applied = set(backend.get_applied_migration_hashes())
        return [MigrationStatus(m.id, m.hash in applied) for m in _migrations()]


def rollback(database_url: str, count: int = 1, lock_timeout: int = 600) -> list[str]:
    """Roll back the `count` most recently applied migrations; returns their ids (may be fewer)."""
    if count < 1:
        raise MigrateError("--count must be at least 1")
    with _backend(database_url) as backend, _locked(backend, lock_timeout):
        migrations = _migrations()
        applicable = backend.to_rollback(migrations)
        chosen = migrations.__class__(list(applicable)[:count], migrations.post_apply)
        backend.rollback_migrations(chosen)
        return [m.id for m in chosen]


def reset(database_url: str, is_production: bool, confirmed: bool, lock_timeout: int = 600) -> None:
    if is_production:
        raise MigrateError("refusing to reset: ENVIRONMENT is production")
    if not confirmed:
        raise MigrateError("reset drops every table and its data; run `migrate reset --yes` to confirm")
    with _backend(database_url) as backend, _locked(backend, lock_timeout):
        migrations = _migrations()
        backend.rollback_migrations(backend.to_rollback(migrations))
        backend.apply_migrations(backend.to_apply(migrations))


def adopt(database_url: str, lock_timeout: int = 600) -> list[str]:
    """Take over a database the old Prisma platform created.

    When the seven seed tables are present and yoyo has no history, check that their schema is exactly
    what the seed migrations create, mark those as applied without running them, then apply the rest.
    Refuses, listing every difference, when the schema does not match.
    """
    with _backend(database_url) as backend, _locked(backend, lock_timeout):
        migrations = _migrations()
        if backend.get_applied_migration_hashes():
            raise MigrateError("this database already has migration history; run `migrate` instead")
        differences = asyncio.run(_seed_schema_differences(database_url))
        if differences:
            raise MigrateError(
                "the database does not match the seed schema, nothing was changed:\n"
                + "\n".join(differences)
            )
        seed = [m for m in migrations if m.id in SEED_MIGRATIONS]
        backend.mark_migrations(migrations.__class__(seed, migrations.post_apply))
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
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
