"""Command line: `python -m service <command>`.

  serve [--host H] [--port P] [--workers N]   run the HTTP service
  dev                                         migrate, then serve with a printed development token
  migrate [apply|list|rollback|adopt|new|reset]
  sweep | stripe-replay [FILE | --stored OUTCOMES] | stripe-sync [--since DATE] | backup --out FILE | restore FILE
"""

from __future__ import annotations

import argparse
import sys

from . import migrate as migrations
from .settings import SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")

    commands.add_parser("dev", help="development: migrate, then serve with a printed dev token")
    commands.add_parser("sweep", help="delete expired chart cache rows in bounded batches")
    replay = commands.add_parser("stripe-replay", help="apply exported (one JSON per line) or stored Stripe events")
    replay.add_argument("file", nargs="?")
    replay.add_argument("--stored", metavar="OUTCOMES", help="re-apply stored events of these outcomes, e.g. pending,conflict")
    sync = commands.add_parser("stripe-sync", help="backfill every subscription from Stripe's API (resumable)")
    sync.add_argument("--since", help="only subscriptions created since this date (YYYY-MM-DD)")
    sync.add_argument("--restart", action="store_true", help="start over instead of resuming")
    backup = commands.add_parser("backup", help="pg_dump the database (custom format)")
    backup.add_argument("--out", required=True)
    restore = commands.add_parser("restore", help="pg_restore a backup into an empty database")
    restore.add_argument("file")

    migrate = commands.add_parser("migrate", help="apply or inspect database migrations")
    migrate.add_argument(
        "action", nargs="?", default="apply",
        choices=["apply", "list", "rollback", "adopt", "new", "reset"],
    )
    migrate.add_argument("name", nargs="?", help="for `new`: the migration's name")
    migrate.add_argument("--count", type=int, default=1, help="for `rollback`: how many")
    migrate.add_argument("--yes", action="store_true", help="for `reset`: confirm")
    return parser


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
    if args.action == "apply":
        applied = migrations.apply(url, timeout)
        print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied
              else "database is up to date")
    elif args.action == "list":
        for item in migrations.status(url):
            print(f"[{'applied' if item.applied else 'pending'}] {item.id}")
    elif args.action == "rollback":
        undone = migrations.rollback(url, args.count, timeout)
        if not undone:
            print("nothing to roll back: no migration is applied")
        else:
            print(f"rolled back {len(undone)} migration(s): {', '.join(undone)}")
            if len(undone) < args.count:
                print(f"nothing more to roll back ({args.count} asked, {len(undone)} were applied)")
    elif args.action == "adopt":
        applied = migrations.adopt(url, timeout)
        print("adopted the seed schema; applied: " + (", ".join(applied) or "nothing more"))
    elif args.action == "reset":
        migrations.reset(url, settings.is_production, args.yes, timeout)
        print("database reset: rolled back and re-applied every migration")
    return 0


def run_command(args, settings) -> int:
    from . import commands
    from .embedded import resolve_database_url

    if args.command == "sweep":
        return commands.sweep(settings)
    if args.command in ("stripe-replay", "stripe-sync"):
        from . import stripe_commands

        if args.command == "stripe-sync":
            return stripe_commands.stripe_sync(settings, args.since, args.restart)
        return stripe_commands.stripe_replay(settings, args.file, args.stored)
    if args.command == "backup":
        return commands.backup(resolve_database_url(settings), args.out)
    return commands.restore(resolve_database_url(settings), args.file)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "migrate":
            return run_migrate(args, settings)
        if args.command in ("sweep", "stripe-replay", "stripe-sync", "backup", "restore"):
            return run_command(args, settings)
        from .server import (  # the HTTP stack is imported only by the commands that need it
            dev,
            serve,
        )

        if args.command == "serve":
            return serve(settings, host=args.host, port=args.port, workers=args.workers)
        if args.command == "dev":
            return dev(settings)
    except (migrations.MigrateError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
