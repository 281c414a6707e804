"""Periodic background work of a running app (the chart sweep, the query-backed gauges)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from .db import DatabaseUnavailable
from .deps import SETTINGS

log = logging.getLogger("service.background")


def every(interval_setting: str, work, what: str, at_start: bool = False):
    """An app cleanup_ctx running `await work(app, round_number)` every `settings.<interval_setting>`
    seconds (0 turns it off) until the app stops: first at start when `at_start`, else one interval in.
    A database outage skips a round with a warning; any other failure is logged with its trace. Neither
    stops the loop."""

    async def context(app: web.Application):
        interval = getattr(app[SETTINGS], interval_setting)

        async def loop():
            round_number = 0
            if not at_start:
                await asyncio.sleep(interval)
            while True:
                try:
                    await work(app, round_number)
                except (DatabaseUnavailable, OSError) as exc:
                    log.warning("%s skipped: %s", what, exc)
                except Exception:
                    log.exception("%s failed", what)
                round_number += 1
                await asyncio.sleep(interval)

        task = asyncio.create_task(loop()) if interval > 0 else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context
