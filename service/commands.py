"""The operational commands: sweep, backup, restore (Stripe's are in stripe_commands.py)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from .migrate import MigrateError
from .queries import Q
from .resources import open_deps


class CommandError(MigrateError):
    """Shown as one line, exit status 1 (same handling as migration errors)."""


def sweep(settings) -> int:
    from .data.sweeps import sweep_all

    async def run():
        async with open_deps(settings) as deps:
            return await sweep_all(deps)

    for table, result in asyncio.run(run()).items():
        backlog = "; a backlog, in physical order" if result.physicalOrder else ""
        print(f"{table}: deleted {result.count} expired row(s) in {result.batches} batch(es); "
              f"longest batch {result.longestBatchMs} ms{backlog}")
    return 0


def _pg_tool(name: str) -> str:
    """The newest client tool at hand (a newer pg_dump reads older servers, not the reverse): the
    machine's, or the one the pgserver wheel ships for embedded mode."""
    candidates = [shutil.which(name)]
    try:
        from .embedded import import_pgserver

        pgserver = import_pgserver()
        candidates.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name))
    except (ImportError, ValueError):  # ValueError: SettingsError, pgserver not installed
        pass
    versions = []
    for path in filter(None, candidates):
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
            versions.append((int(out.split()[2].split(".")[0]), path))
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            continue
    if not versions:
        raise CommandError(f"{name} is not installed (Debian: postgresql-client)")
    return max(versions)[1]


def backup(database_url: str, out: str) -> int:
    from . import backups

    return backups.backup(_pg_tool("pg_dump"), database_url, out)


def restore(database_url: str, file: str, privileges: bool = True) -> int:
    from . import backups

    if not Path(file).is_file():
        raise CommandError(f"no such file: {file}")

    async def tables_present() -> int:
        from .migrate import connect

        conn = await connect(database_url)
        try:
            return await conn.fetchval(Q.catalog_table_count)
        finally:
            await conn.close()

    if asyncio.run(tables_present()):
        raise CommandError("restore needs an empty database; this one has tables")
    return backups.restore(_pg_tool("pg_restore"), database_url, file, privileges)
