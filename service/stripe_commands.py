"""`python -m service stripe-replay` and `stripe-sync`: re-apply stored or exported events; backfill
every subscription from Stripe's API."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from .commands import CommandError
from .queries import Q
from .resources import open_deps
from .stripe_api import StripeUnavailable, open_stripe_api

SYNC_NAME = "subscriptions"


def _summary(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "no events"


def stripe_replay(settings, path: str | None, stored: str | None) -> int:
    """Exported events (one JSON object per line) applied exactly as the webhook would; or, with
    --stored OUTCOMES, the stored events of those outcomes (e.g. pending,conflict) applied again.

    A file is read and every line parsed before anything is applied, so a malformed line changes
    nothing; if applying one fails, the message says which lines were applied (re-running the file is
    safe: applied events come back as duplicates)."""
    from .data.stripe_events import apply_event, replay_stored
    from .data.stripe_objects import Rejected, decode_event, parse_event

    if path is None and stored is None:
        raise CommandError("give a FILE of exported events or --stored OUTCOMES")
    events = []
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"no such file: {path}")
        with file.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    events.append((number, parse_event(*decode_event(line.strip()))))
                except Rejected as exc:
                    raise CommandError(f"{path}:{number}: not a Stripe event ({exc}); nothing was applied") from None

    async def run():
        outcomes: dict[str, int] = {}
        api = open_stripe_api(settings)
        fetch = api.subscription if api else None
        try:
            async with open_deps(settings) as deps:
                if path is None:
                    wanted = [s.strip() for s in stored.split(",") if s.strip()]
                    async for result in replay_stored(deps, wanted, fetch):
                        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
                    return outcomes
                applied_lines: list[int] = []
                for number, event in events:
                    try:
                        outcome = (await apply_event(deps, event, fetch)).outcome
                    except Exception as exc:  # noqa: BLE001 - any failure is reported with the lines applied
                        done = _line_ranges(applied_lines) or "none"
                        raise CommandError(
                            f"{path}:{number}: could not be applied ({type(exc).__name__}: {exc}); "
                            f"lines applied before it: {done}; lines {number}- were not",
                            hint="fix the cause and replay the whole file: applied events count as duplicates",
                        ) from None
                    applied_lines.append(number)
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
        finally:
            if api is not None:
                await api.close()
        return outcomes

    print("replayed: " + _summary(asyncio.run(run())))
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


def _since(value: str | None) -> int | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since {value!r}: expected a date like 2025-01-31") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def stripe_sync(settings, since: str | None, restart: bool = False) -> int:
    """Every subscription (any status, created since --since) read from Stripe's API, newest first, and
    applied like an event created at the moment of the read: safe while webhooks arrive (a newer event
    still wins, terminal states stay terminal). Progress is saved after each page, so a rerun with the
    same --since resumes where it stopped."""
    from .data.stripe_events import apply_snapshot

    api = open_stripe_api(settings)
    if api is None:
        raise CommandError("stripe-sync needs STRIPE_API_KEY")
    created_gte = _since(since)

    async def run():
        outcomes: dict[str, int] = {}
        try:
            async with open_deps(settings) as deps:
                saved = await deps.db.fetchrow(Q.stripe_sync_get, SYNC_NAME)
                resume = saved is not None and saved["finishedAt"] is None and saved["since"] == created_gte \
                    and not restart
                cursor, done = (saved["cursor"], saved["done"]) if resume else (None, 0)
                if resume and cursor:
                    print(f"resuming after {cursor} ({done} done)", file=sys.stderr)
                while True:
                    read_at = int(time.time())
                    try:
                        page, more = await api.subscriptions(created_gte=created_gte, starting_after=cursor)
                    except StripeUnavailable as exc:
                        raise CommandError(f"{exc} (progress saved: rerun to resume)") from None
                    for obj in page:
                        result = await apply_snapshot(deps, obj, read_at)
                        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
                    done += len(page)
                    cursor = page[-1]["id"] if page else cursor
                    finished = None if more and page else datetime.now(UTC).replace(tzinfo=None)
                    await deps.db.execute(Q.stripe_sync_save, SYNC_NAME, created_gte, cursor, done, finished)
                    print(f"\rsynced {done} subscription(s)", end="", file=sys.stderr, flush=True)
                    if finished:
                        print(file=sys.stderr)
                        return outcomes
        finally:
            await api.close()

    print("synced: " + _summary(asyncio.run(run())))
    return 0
