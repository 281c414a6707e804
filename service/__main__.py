"""Command line: `python -m service <command>`.

  serve [--host H] [--port P] [--workers N]   run the HTTP service
  dev                                         migrate, then serve with a printed development token
  migrate [apply|status|rollback|adopt|new|reset|unlock]
  sweep | stripe-replay [FILE | --stored OUTCOMES] | stripe-sync [--since DATE] | backup --out FILE | restore FILE
  doctor [--json]                             check the deployment, one line per check
"""

from __future__ import annotations

import argparse
import sys

from . import migrate as migrations
from .migrate_cli import add_migrate_parser, run_migrate
from .settings import SettingsError, load_settings
from .tracing import TracingConfigError


def port_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1-65535, got {text}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=port_number)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")

    dev = commands.add_parser("dev", help="development: migrate, then serve with a printed dev token")
    dev.add_argument("--host")
    dev.add_argument("--port", type=port_number)
    commands.add_parser("sweep", help="delete expired chart cache rows, sessions and sign-in tokens in bounded batches")
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
    restore.add_argument("--no-privileges", action="store_true", help="leave the dump's grants out")

    doctor = commands.add_parser("doctor", help="check this deployment: one line per check, exit 1 on a failure")
    doctor.add_argument("--json", action="store_true", help="one JSON object, for scripts")

    commands.add_parser("find-email-duplicates", help="list users whose e-mails differ only in case")
    reencrypt = commands.add_parser("reencrypt", help="rewrite stored OAuth tokens under the newest key")
    reencrypt.add_argument("--batch-size", type=int, default=500)
    reencrypt.add_argument("--after", default="", help="resume after this account id")
    add_migrate_parser(commands)
    return parser


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
    return commands.restore(resolve_database_url(settings), args.file, privileges=not args.no_privileges)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "doctor":  # before load_settings: a bad setting is one of its checks
        from .doctor import main as doctor

        return doctor(args.json)
    try:
        settings = load_settings()
        if args.command == "migrate":
            try:
                return run_migrate(args, settings)
            except Exception as exc:
                from .email_duplicates import refusal_report

                if (report := refusal_report(exc)) is None:
                    raise
                print(report, file=sys.stderr)  # the duplicates, not a traceback
                return 1
        if args.command == "find-email-duplicates":
            from . import email_duplicates
            from .embedded import resolve_database_url

            return email_duplicates.run(resolve_database_url(settings))
        if args.command == "reencrypt":
            from . import reencrypt
            from .embedded import resolve_database_url

            return reencrypt.run(resolve_database_url(settings), settings.field_encryption_key,
                                 args.batch_size, args.after)
        if args.command in ("sweep", "stripe-replay", "stripe-sync", "backup", "restore"):
            return run_command(args, settings)
        from .server import (  # the HTTP stack is imported only by the commands that need it
            dev,
            serve,
        )

        if args.command == "serve":
            return serve(settings, host=args.host, port=args.port, workers=args.workers)
        if args.command == "dev":
            return dev(settings, host=args.host, port=args.port)
    except SettingsError as exc:  # one line per bad setting
        print("\n".join(f"error: {line}" for line in str(exc).splitlines()), file=sys.stderr)
        return 1
    except (migrations.MigrateError, TracingConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if getattr(exc, "hint", None):
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
