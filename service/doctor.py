"""`python -m service doctor [--json]`: is this deployment healthy? One line per check, ok/warn/fail.

Exit code 0 when no check failed (warnings allowed), 1 when one did. Each check and its fix is described
in docs/operations.md § Doctor. Run it with the service's own environment (its DATABASE_URL, the app
role), e.g. `docker compose run --rm app python -m service doctor`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import asyncpg
import msgspec

from . import migrate
from .queries import Q

OK, WARN, FAIL = "ok", "warn", "fail"
SKEW_WARN_SECONDS = 1.0  # TTLs, session expiry and Stripe's signature tolerance compare clocks
SKEW_FAIL_SECONDS = 30.0
GOOD_EVICTION_POLICIES = {"allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "volatile-ttl",
                          "allkeys-random", "volatile-random"}


@dataclass
class Check:
    name: str
    status: str
    detail: str


# ---- migrations ------------------------------------------------------------------------------------

def drifted_migrations(database_url: str, report=None) -> list[str]:
    """Ids of applied migrations whose file (or rollback) changed after they were applied, or whose file
    is gone from disk: the one place drift is judged (the doctor and the schema_migrations_drifted gauge),
    from the checksums `migrate` records (service/migration_ledger.py)."""
    report = report or migrate.drift_report(database_url)
    return [m.id for m in report.migrations if m.changed or m.status == "missing"]


def migration_state(database_url: str) -> tuple[list[str], list[str], list[str]]:
    """(applied ids, pending ids, drifted ids), from one read of the database."""
    report = migrate.drift_report(database_url)
    applied = [item.id for item in report.migrations if item.applied]
    pending = [item.id for item in report.pending]
    return applied, pending, drifted_migrations(database_url, report)


# ---- the checks --------------------------------------------------------------------------------------

def check_settings(env=None) -> tuple[Check, object]:
    from .auth import parse_service_tokens
    from .crypto import FieldCipher, FieldKeyError
    from .settings import SettingsError, load_settings
    from .tracing import TracingConfigError, validate_env

    try:
        settings = load_settings(env)
        FieldCipher(settings.field_encryption_key)
        parse_service_tokens(settings.service_tokens)
        exporter = validate_env(env)
    except (SettingsError, FieldKeyError, TracingConfigError, ValueError) as exc:
        return Check("settings", FAIL, str(exc)), None
    tracing = f"tracing on ({exporter})" if exporter else "tracing off"
    return Check("settings", OK, f"environment {settings.environment}; {tracing}"), settings


async def database_checks(settings, database_url: str, clock=time.time) -> list[Check]:
    """Database reachable, role, migrations, invalid indexes, time zone, clock skew, key ids."""
    try:
        # No server settings: the time zone read below is what other clients' sessions get.
        conn = await asyncpg.connect(database_url, timeout=settings.connect_timeout, statement_cache_size=0)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return [Check("database", FAIL, f"cannot connect: {type(exc).__name__}: {exc}")]
    try:
        before = clock()
        server = await conn.fetchrow(Q.doctor_server)
        after = clock()
        checks = [Check("database", OK, f"PostgreSQL {server['version']}")]
        checks.append(await _guarded("role", _role_check(conn)))
        checks.append(await asyncio.to_thread(_migrations_check, database_url))
        checks.append(await _guarded("indexes", _invalid_indexes_check(conn)))
        checks.append(_time_zone_check(server["time_zone"]))
        checks.append(_clock_check(server["now_epoch"], before, after))
        checks.append(await _guarded("field keys", _field_keys_check(conn, settings)))
        return checks
    finally:
        await conn.close()


async def _guarded(name: str, check) -> Check:
    """A check whose query fails (a table missing before the first migrate) fails; the others still run."""
    try:
        return await check
    except asyncpg.PostgresError as exc:
        return Check(name, FAIL, f"cannot check: {type(exc).__name__}: {exc}")


async def _role_check(conn) -> Check:
    role = await conn.fetchrow(Q.doctor_role)
    name = role["role"]
    if role["can_use_users"] is None:
        return Check("role", FAIL, f"{name}: there is no users table (run `python -m service migrate`)")
    if not role["can_use_users"]:
        return Check("role", FAIL, f"{name} cannot read and write the service's tables (grants missing, or "
                                   "migrations not applied)")
    problems = []
    if role["superuser"]:
        problems.append("is a superuser")
    if role["owns_tables"]:
        problems.append("owns the tables (migrations ran as the app role)")
    if role["can_create_in_schema"] or role["can_create_schema"]:
        problems.append("can create objects (DDL)")
    if problems:
        return Check("role", WARN, f"{name} " + ", ".join(problems) + "; the service should connect as a "
                                   "DML-only app role (sql/admin/roles.sql)")
    return Check("role", OK, f"{name}: data privileges only, no DDL")


def _migrations_check(database_url: str) -> Check:
    try:
        applied, pending, drifted = migration_state(database_url)
    except migrate.MigrateError as exc:
        return Check("migrations", FAIL, str(exc))
    if drifted:
        return Check("migrations", FAIL, f"changed after they were applied: {', '.join(drifted)}")
    if pending:
        return Check("migrations", FAIL, f"{len(applied)} applied, {len(pending)} pending: {', '.join(pending)} "
                                         "(run `python -m service migrate`)")
    return Check("migrations", OK, f"{len(applied)} applied, none pending, none changed since applied")


async def _invalid_indexes_check(conn) -> Check:
    rows = await conn.fetch(Q.doctor_invalid_indexes)
    if rows:
        names = ", ".join(f"{r['index_name']} on {r['table_name']}" for r in rows)
        return Check("indexes", FAIL, f"invalid (a failed CREATE INDEX CONCURRENTLY): {names}")
    return Check("indexes", OK, "no invalid index")


def _time_zone_check(zone: str) -> Check:
    if zone.upper() in ("UTC", "ETC/UTC", "GMT", "ETC/GMT", "Z", "ZULU", "UCT", "ETC/UCT"):
        return Check("time zone", OK, zone)
    return Check("time zone", WARN, f"{zone}: sessions other than the service's (Prisma, psql) read and "
                                    f"write TIMESTAMP columns in {zone}, not UTC (ALTER DATABASE ... SET "
                                    "TimeZone = 'UTC')")


def _clock_check(db_epoch: float, before: float, after: float) -> Check:
    """The database's clock against ours, at the middle of the round trip (its half is the error bar)."""
    skew = db_epoch - (before + after) / 2
    text = f"database clock {'ahead of' if skew > 0 else 'behind'} this host's by {abs(skew):.3f} s"
    if abs(skew) >= SKEW_FAIL_SECONDS:
        return Check("clock", FAIL, text)
    if abs(skew) >= SKEW_WARN_SECONDS:
        return Check("clock", WARN, text)
    return Check("clock", OK, text)


async def _field_keys_check(conn, settings) -> Check:
    from .crypto import FieldCipher

    configured = set(FieldCipher(settings.field_encryption_key).keys)
    used = {row["kid"] for row in await conn.fetch(Q.doctor_field_key_ids)}
    missing = sorted(used - configured)
    if missing:
        return Check("field keys", FAIL, f"stored tokens are encrypted with key ids not in FIELD_ENCRYPTION_KEY: "
                                         f"{', '.join(missing)} (those accounts cannot be read)")
    if not configured:
        return Check("field keys", WARN, "FIELD_ENCRYPTION_KEY is empty: OAuth tokens are stored unencrypted")
    return Check("field keys", OK, f"{len(configured)} key(s) configured; stored data uses "
                                   f"{', '.join(sorted(used)) or 'none yet'}")


async def redis_check(settings) -> Check:
    if not settings.redis_url:
        return Check("redis", OK, "not configured: each instance caches in process")
    import redis.asyncio as redis

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
        try:
            config = await client.config_get("maxmemory*")
        except redis.ResponseError:  # managed Redis often forbids CONFIG
            return Check("redis", WARN, "reachable; eviction policy unknown (CONFIG GET not allowed)")
    except (redis.RedisError, OSError) as exc:
        where = urlsplit(settings.redis_url)  # host and port only: the URL may hold a password
        return Check("redis", FAIL, f"cannot reach {where.hostname}:{where.port or 6379}: {type(exc).__name__}")
    finally:
        await client.aclose()
    policy, limit = config.get("maxmemory-policy", "?"), int(config.get("maxmemory", 0) or 0)
    limit_text = f"maxmemory {limit}" if limit else "no maxmemory"
    if policy in GOOD_EVICTION_POLICIES and limit:
        return Check("redis", OK, f"reachable; {policy}, {limit_text}")
    if policy == "noeviction":
        return Check("redis", WARN, f"reachable; noeviction, {limit_text}: when full, cache fills and "
                                    "invalidations fail (set maxmemory-policy allkeys-lru)")
    return Check("redis", WARN, f"reachable; {policy}, {limit_text}: set maxmemory and allkeys-lru")


def stripe_check(settings) -> Check:
    secrets = [s.strip() for s in settings.stripe_webhook_secret.split(",") if s.strip()]
    if not secrets:
        return Check("stripe", FAIL, "STRIPE_WEBHOOK_SECRET is empty: every webhook delivery is answered 503")
    odd = [s[:6] + "..." for s in secrets if not s.startswith("whsec_")]
    if odd:
        return Check("stripe", WARN, f"webhook secret(s) not of Stripe's whsec_ form: {', '.join(odd)}")
    return Check("stripe", OK, f"{len(secrets)} webhook secret(s) set")


# ---- running them --------------------------------------------------------------------------------

async def run_checks(env=None, clock=time.time) -> list[Check]:
    settings_check, settings = check_settings(env)
    if settings is None:
        return [settings_check]
    from .embedded import resolve_database_url

    checks = [settings_check]
    checks += await database_checks(settings, resolve_database_url(settings), clock)
    checks.append(await redis_check(settings))
    checks.append(stripe_check(settings))
    return checks


def report(checks: list[Check], as_json: bool, out=sys.stdout) -> int:
    if as_json:
        out.write(msgspec.json.encode({"ok": all(c.status != FAIL for c in checks),
                                       "checks": [asdict(c) for c in checks]}).decode() + "\n")
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            out.write(f"{c.status:<4}  {c.name:<{width}}  {c.detail}\n")
    return 1 if any(c.status == FAIL for c in checks) else 0


def main(as_json: bool) -> int:
    return report(asyncio.run(run_checks()), as_json)
