"""The `migrate` command line: parses its options, calls service.migrate, prints the outcome.

Exit status: 0 done (or up to date, or no drift), 1 an error (one line and a hint), 3 `status` found drift.
"""

from __future__ import annotations

import json

from . import migrate as migrations
from .migration_safety import LockPolicy

ACTIONS = ["apply", "status", "list", "rollback", "adopt", "new", "reset", "unlock"]
DRIFT_EXIT = 3


def add_migrate_parser(commands) -> None:
    migrate = commands.add_parser("migrate", help="apply or inspect database migrations")
    migrate.add_argument("action", nargs="?", default="apply", choices=ACTIONS,
                         help="status (alias list) shows applied/pending and drift")
    migrate.add_argument("name", nargs="?", help="for `new`: the migration's name")
    migrate.add_argument("--count", type=int, default=1, help="for `rollback`: how many")
    migrate.add_argument("--yes", action="store_true", help="for `reset`: confirm")
    migrate.add_argument("--confirm-production", action="store_true",
                         help="rollback/reset: allowed in production (they drop what they name)")
    migrate.add_argument("--allow-drift", action="store_true",
                         help="apply/adopt even when applied migrations changed on disk")
    migrate.add_argument("--dry-run", action="store_true", help="apply/rollback: print the SQL, run nothing")
    migrate.add_argument("--json", action="store_true", help="status: machine-readable output")


def lock_policy(settings) -> LockPolicy:
    return LockPolicy(step_lock_timeout_ms=settings.migrate_step_lock_timeout_ms,
                      total_wait=settings.migrate_lock_wait)


def _print_sql(items: list[tuple[str, str]], empty: str) -> None:
    if not items:
        print(empty)
    for migration_id, sql in items:
        print(f"-- ===== {migration_id} =====")
        print(sql.rstrip() + "\n")


def _print_status(report, as_json: bool) -> int:
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        for m in report.migrations:
            when = m.applied_at or ""
            note = ""
            if m.changed:
                note = "  CHANGED since applied: " + " and ".join(m.changed)
            elif m.status == "missing":
                note = "  MISSING on disk"
            print(f"{m.status:8} {when:19}  {m.id}{note}")
        for index in report.invalid_indexes:
            print(f"INVALID index {index}")
        print(f"drift: {report.summary()}" if report.drift
              else f"no drift; {len(report.pending)} pending")
    return DRIFT_EXIT if report.drift else 0


def run_migrate(args, settings) -> int:
    if args.action == "new":
        if not args.name:
            raise migrations.MigrateError("usage: migrate new NAME")
        for path in migrations.new_migration(args.name):
            print(f"wrote {path}")
        return 0
    from .embedded import resolve_database_url

    url = resolve_database_url(settings)
    timeout = settings.migrate_lock_timeout
    policy = lock_policy(settings)
    if args.action == "apply":
        if args.dry_run:
            runnable, waiting = migrations.pending_sql(url)
            _print_sql(runnable, "-- database is up to date: nothing would run")
            for line in waiting:
                print(f"-- {line} (the server cannot install it; `migrate` leaves it pending)")
            return 0
        applied = migrations.apply(url, timeout, policy=policy, allow_drift=args.allow_drift)
        print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied
              else "database is up to date")
    elif args.action in ("status", "list"):
        return _print_status(migrations.drift_report(url), args.json)
    elif args.action == "rollback":
        if args.dry_run:
            _print_sql(migrations.rollback_sql(url, args.count), "-- nothing to roll back")
            return 0
        undone = migrations.rollback(url, args.count, timeout, policy=policy,
                                     is_production=settings.is_production,
                                     confirm_production=args.confirm_production)
        if not undone:
            print("nothing to roll back: no migration is applied")
        else:
            print(f"rolled back {len(undone)} migration(s): {', '.join(undone)}")
            if len(undone) < args.count:
                print(f"nothing more to roll back ({args.count} asked, {len(undone)} were applied)")
    elif args.action == "adopt":
        applied = migrations.adopt(url, timeout, policy=policy)
        print("adopted the seed schema; applied: " + (", ".join(applied) or "nothing more"))
    elif args.action == "reset":
        migrations.reset(url, settings.is_production, args.yes, timeout, policy=policy,
                         confirm_production=args.confirm_production)
        print("database reset: rolled back and re-applied every migration")
    elif args.action == "unlock":
        print(migrations.unlock(url))
    return 0
