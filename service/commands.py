"""The operational commands: sweep, stripe-replay, backup, restore."""

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
        print(f"{table}: deleted {result.count} expired row(s) in {result.batches} batch(es); "
              f"longest batch {result.longestBatchMs} ms")
    return 0


def stripe_replay(settings, path: str) -> int:
    """Apply exported Stripe events (one JSON object per line) exactly as the webhook would.

    The whole file is read and every line parsed before anything is applied, so a malformed line
    changes nothing. Events are then applied in order; if one fails, the message says exactly which
    lines were applied (re-running the file is safe: applied events come back as duplicates).
    """
    from .data.stripe_events import apply_event, parse_event

    file = Path(path)
    if not file.is_file():
        raise CommandError(f"no such file: {path}")
    events = []
    with file.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                events.append((number, parse_event(line), line))
            except Exception as exc:
                raise CommandError(f"{path}:{number}: not a Stripe event ({exc}); nothing was applied") from None

    async def run():
        outcomes: dict[str, int] = {}
        applied_lines: list[int] = []
        async with open_deps(settings) as deps:
            for number, event, line in events:
                try:
                    outcome = await apply_event(deps, event, line)
                except Exception as exc:  # noqa: BLE001 - any failure is reported with the lines applied
                    done = _line_ranges(applied_lines) or "none"
                    raise CommandError(
                        f"{path}:{number}: could not be applied ({type(exc).__name__}: {exc}); "
                        f"lines applied before it: {done}; lines {number}- were not",
                        hint="fix the cause and replay the whole file: applied events count as duplicates",
                    ) from None
                applied_lines.append(number)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes

    outcomes = asyncio.run(run())
    print("replayed: " + (", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "no events"))
    return 0


def _line_ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    ranges: list[list[int]] = []
    for n in numbers:
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)


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
