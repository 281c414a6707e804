"""What makes one migration step safe to retry on a live database.

* Lock-taking statements run with a short `lock_timeout` (set on every connection `migrate` opens), so a
  migration queued behind a long transaction never stalls the other sessions queued behind it for
  more than one short try. A step that times out is retried with backoff until a total wait; then the
  failure names the session that blocked it, as seen by a watcher connection while the step waited.
* Concurrent index builds (`CREATE INDEX CONCURRENTLY`) that fail leave an INVALID index behind, which
  `IF NOT EXISTS` would then skip for ever. Before each attempt such a leftover is dropped; after it,
  every index the migration builds must exist and be valid, or the migration is not recorded.
  `DROP INDEX CONCURRENTLY` in rollbacks is checked the same way: the index must be gone.
* Every database error becomes one line (`MigrateError`), with a hint when the cause is recognisable.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC

import psycopg
from psycopg import errors as pg_errors

from .migrate_errors import MigrateError

_IDENT = r'("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED = rf"{_IDENT}(?:\s*\.\s*{_IDENT})?"
CONCURRENT_BUILD = re.compile(
    rf"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?{_QUALIFIED}", re.IGNORECASE
)
CONCURRENT_DROP = re.compile(rf"\bDROP\s+INDEX\s+CONCURRENTLY\s+(?:IF\s+EXISTS\s+)?{_QUALIFIED}", re.IGNORECASE)
RETRYABLE = (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected)


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def _regclass_name(match: re.Match) -> str:
    """The matched (possibly schema-qualified) name, quoted as to_regclass expects it."""
    parts = [p for p in match.groups() if p]
    return ".".join(p if p.startswith('"') else f'"{p.lower()}"' for p in parts)


def built_indexes(sql: str) -> list[str]:
    return [_regclass_name(m) for m in CONCURRENT_BUILD.finditer(_strip_comments(sql))]


def dropped_indexes(sql: str) -> list[str]:
    return [_regclass_name(m) for m in CONCURRENT_DROP.finditer(_strip_comments(sql))]


@dataclass(frozen=True)
class LockPolicy:
    """How long one lock wait may last, and how long a step keeps retrying in total."""

    step_lock_timeout_ms: int = 2000
    total_wait: float = 60.0


@dataclass(frozen=True)
class Blocker:
    pid: int
    state: str
    transaction_age: str
    query_start: str
    query: str

    def describe(self) -> str:
        return (f"blocked by pid {self.pid} ({self.state}, transaction open {self.transaction_age}, "
                f"query started {self.query_start}: {self.query!r})")


_BLOCKERS_SQL = """
SELECT b.pid, coalesce(b.state, '?'), now() - b.xact_start, b.query_start, left(b.query, 80)
FROM pg_stat_activity AS w
CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocking(pid)
JOIN pg_stat_activity AS b ON b.pid = blocking.pid
WHERE w.application_name = %s AND w.pid <> pg_backend_pid()
ORDER BY b.xact_start NULLS LAST
LIMIT 1
"""


def _age(delta) -> str:
    if delta is None:
        return "?"
    seconds = int(delta.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


class BlockerWatcher:
    """Polls, from its own connection, who blocks this migrate's sessions; remembers the last one seen.

    The step that waits cannot ask (it is waiting), and once it has timed out the wait is gone, so the
    question is asked while it waits.
    """

    def __init__(self, conninfo: str, application_name: str, interval: float = 0.1):
        self.conninfo, self.application_name, self.interval = conninfo, application_name, interval
        self.last: Blocker | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="migrate-blocker-watcher", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self):
        try:
            with psycopg.connect(self.conninfo, autocommit=True, application_name="aw-migrate-watcher",
                                 connect_timeout=10) as conn:
                while not self._stop.wait(self.interval):
                    row = conn.execute(_BLOCKERS_SQL, (self.application_name,)).fetchone()
                    if row:
                        started = row[3].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") \
                            if row[3] else "?"
                        self.last = Blocker(row[0], row[1], _age(row[2]), started, " ".join(row[4].split()))
        except psycopg.Error:
            return  # the watcher only improves the message; the migration does not depend on it


def run_with_lock_retries(step, what: str, policy: LockPolicy, watcher: BlockerWatcher | None):
    """Run `step()`; on a lock timeout or deadlock wait (backoff with jitter) and retry until
    `policy.total_wait` seconds have passed, then raise one line naming the blocker."""
    deadline = time.monotonic() + policy.total_wait
    delay = 0.25
    while True:
        try:
            return step()
        except RETRYABLE as exc:
            if time.monotonic() + delay > deadline:
                blocker = watcher.last.describe() if watcher and watcher.last else "the blocking session was not seen"
                reason = "a deadlock" if isinstance(exc, pg_errors.DeadlockDetected) else "a lock"
                raise MigrateError(
                    f"{what}: gave up after {policy.total_wait:g} s waiting for {reason}: {blocker}",
                    hint="let that transaction finish (or end it: SELECT pg_terminate_backend(pid)), then "
                         "run `migrate` again; MIGRATE_LOCK_WAIT sets how long migrate keeps retrying",
                ) from None
            time.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 5.0)


def _index_valid(conn, name: str) -> bool | None:
    """True/False for an index that exists (valid or not), None when there is none of that name."""
    row = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)).fetchone()
    return None if row is None else row[0]


def drop_invalid_indexes(conninfo: str, names: list[str]) -> None:
    """Drop every index of these names that exists but is not valid (a failed concurrent build)."""
    if not names:
        return
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in names:
            if _index_valid(conn, name) is False:
                conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def check_indexes(conninfo: str, migration_id: str, built: list[str], dropped: list[str]) -> None:
    """After a migration: what it built exists and is valid; what it dropped is gone."""
    if not built and not dropped:
        return
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in built:
            valid = _index_valid(conn, name)
            if not valid:
                state = "missing" if valid is None else "INVALID"
                raise MigrateError(
                    f"{migration_id}: index {name} is {state} after the build; the migration is not recorded",
                    hint="run `migrate` again: the invalid index is dropped and rebuilt",
                )
        for name in dropped:
            if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None:
                raise MigrateError(f"{migration_id}: index {name} is still there after the rollback",
                                   hint="run the rollback again")


def invalid_indexes(conn) -> list[str]:
    """Invalid indexes in the current schema (psycopg connection)."""
    rows = conn.execute(
        """SELECT i.relname || ' on ' || t.relname
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
           WHERE NOT x.indisvalid AND i.relnamespace = current_schema()::regnamespace
           ORDER BY 1"""
    ).fetchall()
    return [r[0] for r in rows]


# Error text -> what the operator should do. Checked in order; the first match gives the hint.
_HINTS = (
    (re.compile(r'(type "Role"|relation "users"|relation "accounts") already exists'),
     "this looks like a database created by the old platform: run `migrate adopt`"),
    (re.compile(r"permission denied|must be owner"),
     "run migrate as the owner role (sql/admin/roles.sql), not the app role"),
    (re.compile(r"canceling statement due to statement timeout"),
     "a statement ran past its statement_timeout; run it in a quieter hour or raise the migration's timeout"),
)


def describe_database_error(migration_id: str, direction: str, exc: Exception) -> MigrateError:
    text = " ".join(str(exc).strip().splitlines()[:1]) or type(exc).__name__
    hint = next((h for pattern, h in _HINTS if pattern.search(text)), None)
    verb = "applying" if direction == "apply" else "rolling back"
    # A migration that refuses on purpose says why in its DETAIL (0020 lists the e-mails that differ only
    # in case): that report follows the one line.
    detail = getattr(getattr(exc, "diag", None), "message_detail", None)
    return MigrateError(f"{verb} {migration_id} failed: {text}" + (f"\n{detail}" if detail else ""), hint=hint)
