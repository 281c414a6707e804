"""`backup` and `restore`: pg_dump / pg_restore, run so that nothing leaks and failures read cleanly.

* The password never appears on a command line (where `ps` shows it to every user of the machine): it
  is taken out of the URL and handed over in PGPASSWORD.
* Dump files are readable by their owner only (0600) and appear under their name only when complete.
* Progress: each table is reported as it is dumped or restored (pg_dump/pg_restore --verbose).
* Grants are kept in the dump; `restore --no-privileges` leaves them out when the target lacks the roles.
* A failure is one line: the tool's first error, without its prefix, shown once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from .migrate_errors import MigrateError

# pg_dump: dumping contents of table "public.users" / pg_restore: processing data for table "public.users"
_PROGRESS = re.compile(r'(?:dumping contents of|processing data for) table "([^"]+)"')
_ERROR = re.compile(r"^(?:pg_dump|pg_restore): error: (.*)$")


class BackupError(MigrateError):
    """Shown as one line, exit status 1."""


def without_password(database_url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that carries the password instead."""
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url, {}
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host)), {
        "PGPASSWORD": unquote(parts.password)}


def _run_tool(args: list[str], password_env: dict[str, str], verb: str) -> None:
    """Run pg_dump/pg_restore --verbose: table lines become progress, the first error the message."""
    env = {**os.environ, **password_env}
    errors: list[str] = []
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                               umask=0o077)
    assert process.stderr is not None
    tables = 0
    for line in process.stderr:
        line = line.rstrip()
        if match := _PROGRESS.search(line):
            tables += 1
            print(f"{verb} {match[1]} ({tables})", file=sys.stderr, flush=True)
        elif match := _ERROR.match(line):
            errors.append(match[1])
    if process.wait() != 0:
        first = errors[0] if errors else f"exited with status {process.returncode}"
        raise BackupError(f"{Path(args[0]).name}: {first}")


def backup(pg_dump: str, database_url: str, out: str) -> int:
    url, password_env = without_password(database_url)
    target = Path(out)
    partial = target.with_name(f".{target.name}.partial")
    try:
        _run_tool([pg_dump, "--format=custom", "--no-owner", "--verbose", "--file", str(partial),
                   "--dbname", url], password_env, "dumping")
        partial.chmod(0o600)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    print(f"wrote {out} ({target.stat().st_size} bytes, mode 0600)")
    return 0


def restore(pg_restore: str, database_url: str, file: str, privileges: bool = True) -> int:
    url, password_env = without_password(database_url)
    args = [pg_restore, "--no-owner", "--exit-on-error", "--single-transaction", "--verbose", "--dbname", url]
    if not privileges:
        args.append("--no-privileges")
    try:
        _run_tool([*args, file], password_env, "restoring")
    except BackupError as exc:
        hint = ("the dump's grants name roles this server lacks: create them (sql/admin/roles.sql) or "
                "restore with --no-privileges") if "role" in str(exc) and "does not exist" in str(exc) else None
        raise BackupError(str(exc), hint=hint) from None
    print(f"restored {file}")
    return 0
