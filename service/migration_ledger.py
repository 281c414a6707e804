"""Checksums of applied migrations, and the drift between the database and the files on disk.

yoyo records only a migration's id, so an applied file edited afterwards, or deleted, was invisible.
`migrate` keeps its own table, `_aw_migration_checksum`, next to yoyo's: the SHA-256 of each applied
migration's file and of its rollback, written when the migration is applied (in the transaction that
records it for transactional migrations). Migrations applied before this table existed are recorded
with the checksums of the files found at that moment (`backfilled`), the only honest baseline there is.

`drift_report(url)` is the read-only view every caller shares (`migrate status`, `migrate` itself,
and any health check such as a future `doctor` command): it never creates or changes anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

LEDGER_TABLE = "_aw_migration_checksum"

CREATE_LEDGER = f"""
CREATE TABLE IF NOT EXISTS "{LEDGER_TABLE}" (
    "migration_id" TEXT PRIMARY KEY,
    "sha256" TEXT NOT NULL,
    "rollback_sha256" TEXT,
    "recorded_at_utc" TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    "backfilled" BOOLEAN NOT NULL DEFAULT false
)"""


def file_sha256(path: Path) -> str | None:
    """Of the file's text with line endings as LF: a checkout that writes CRLF (core.autocrlf) is the
    same migration, not drift."""
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest() if path.exists() else None


def rollback_path(forward: Path) -> Path:
    return forward.with_name(forward.name[: -len(".sql")] + ".rollback.sql")


def checksums(forward: Path) -> tuple[str | None, str | None]:
    return file_sha256(forward), file_sha256(rollback_path(forward))


def ensure_ledger(cursor_execute) -> None:
    cursor_execute(CREATE_LEDGER)


def record(cursor_execute, migration_id: str, forward: Path, backfilled: bool = False) -> None:
    sha, rollback_sha = checksums(forward)
    cursor_execute(
        f'INSERT INTO "{LEDGER_TABLE}" (migration_id, sha256, rollback_sha256, backfilled) '
        "VALUES (%s, %s, %s, %s) ON CONFLICT (migration_id) DO UPDATE SET sha256 = EXCLUDED.sha256, "
        "rollback_sha256 = EXCLUDED.rollback_sha256, recorded_at_utc = now() AT TIME ZONE 'UTC', "
        "backfilled = EXCLUDED.backfilled",
        (migration_id, sha, rollback_sha, backfilled),
    )


def forget(cursor_execute, migration_id: str) -> None:
    cursor_execute(f'DELETE FROM "{LEDGER_TABLE}" WHERE migration_id = %s', (migration_id,))


@dataclass
class MigrationState:
    id: str
    status: str                    # "applied", "pending" or "missing" (applied, no file on disk)
    applied_at: str | None = None  # UTC, ISO 8601
    changed: list[str] = field(default_factory=list)  # "migration", "rollback": differ from when applied
    checksum_recorded: bool = False

    @property
    def applied(self) -> bool:
        return self.status != "pending"


@dataclass
class DriftReport:
    migrations: list[MigrationState]
    invalid_indexes: list[str]

    @property
    def changed(self) -> list[MigrationState]:
        return [m for m in self.migrations if m.changed]

    @property
    def missing_on_disk(self) -> list[MigrationState]:
        return [m for m in self.migrations if m.status == "missing"]

    @property
    def pending(self) -> list[MigrationState]:
        return [m for m in self.migrations if m.status == "pending"]

    @property
    def drift(self) -> bool:
        return bool(self.changed or self.missing_on_disk or self.invalid_indexes)

    def summary(self) -> str:
        parts = []
        if self.changed:
            parts.append("changed since applied: " + ", ".join(
                f"{m.id} ({' and '.join(m.changed)})" for m in self.changed))
        if self.missing_on_disk:
            parts.append("applied but missing on disk: " + ", ".join(m.id for m in self.missing_on_disk))
        if self.invalid_indexes:
            parts.append("invalid indexes: " + ", ".join(self.invalid_indexes))
        return "; ".join(parts)

    def as_json(self) -> dict:
        return {
            "drift": self.drift,
            "migrations": [asdict(m) for m in self.migrations],
            "pending": [m.id for m in self.pending],
            "changed": [m.id for m in self.changed],
            "missing_on_disk": [m.id for m in self.missing_on_disk],
            "invalid_indexes": self.invalid_indexes,
        }


def build_report(disk: dict[str, Path], applied: dict[str, datetime], recorded: dict[str, tuple],
                 invalid: list[str]) -> DriftReport:
    """disk: id -> forward file; applied: id -> applied at (yoyo); recorded: id -> (sha, rollback sha)."""
    states = []
    for migration_id in sorted(set(disk) | set(applied)):
        when = applied.get(migration_id)
        state = MigrationState(
            id=migration_id,
            status="pending" if when is None else "applied" if migration_id in disk else "missing",
            applied_at=when.isoformat(sep=" ", timespec="seconds") if when else None,
            checksum_recorded=migration_id in recorded,
        )
        if when is not None and migration_id in disk and migration_id in recorded:
            now_sha, now_rollback = checksums(disk[migration_id])
            then_sha, then_rollback = recorded[migration_id]
            if now_sha != then_sha:
                state.changed.append("migration")
            if now_rollback != then_rollback:
                state.changed.append("rollback")
        states.append(state)
    return DriftReport(states, invalid)
