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
    from .data.charts import sweep_expired

    async def run():
        async with open_deps(settings) as deps:
            return await sweep_expired(deps)

    result = asyncio.run(run())
    print(f"deleted {result.count} expired chart row(s) in {result.batches} batch(es); "
          f"longest batch {result.longestBatchMs} ms")
    return 0


def _pg_tool(name: str) -> str:
    """The newest client tool at hand (a newer pg_dump reads older servers, not the reverse): the
    machine's, or the one the pgserver wheel ships for embedded mode."""
    candidates = [shutil.which(name)]
    try:
        from .embedded import import_pgserver

        pgserver = import_pgserver()
        candidates.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name))
    except ImportError:
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


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise CommandError(f"{Path(args[0]).name}: {message}")


def backup(database_url: str, out: str) -> int:
    _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", out,
          "--dbname", database_url])
    print(f"wrote {out} ({Path(out).stat().st_size} bytes)")
    return 0


def restore(database_url: str, file: str) -> int:
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
    _run([_pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
          "--dbname", database_url, file])
    print(f"restored {file}")
    return 0
