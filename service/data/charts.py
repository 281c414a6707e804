"""Chart cache entries: create, read the newest unexpired (cached no longer than it lives), invalidate,
and sweep expired rows in bounded batches."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import msgspec

from ..db import affected_rows
from ..deps import Deps
from ..ids import new_id
from ..problems import validation
from ..queries import Q
from ..schemas import ChartCreate, ChartType
from . import keys
from .sessions import seconds_until
from .sweeps import SweepResult, sweep_table
from .unknown_outcome import invalidating_if_unknown

log = logging.getLogger("service.charts")
encode = msgspec.json.Encoder().encode


def parse_chart_type(value: str, field: str = "chartType") -> str:
    """Case-insensitive: 'tropical' is TROPICAL."""
    name = value.strip().upper()
    if name not in ChartType.__members__:
        raise validation(field, f"must be one of {', '.join(ChartType.__members__)}")
    return name


async def create_chart(deps: Deps, body: ChartCreate) -> dict:
    chart_type = parse_chart_type(body.chartType)
    if (body.ttlSeconds is None) == (body.expiresAt is None):
        raise validation("ttlSeconds", "give exactly one of ttlSeconds or expiresAt")
    expires = body.expiresAt or datetime.now(UTC) + timedelta(seconds=body.ttlSeconds)
    if expires <= datetime.now(UTC):
        raise validation("expiresAt", "must be in the future")
    pair = (keys.chart_by_pair(body.userId, chart_type),) if body.userId is not None else ()
    async with invalidating_if_unknown(deps, keys=pair):
        row = await deps.db.fetchrow(Q.insert_chart, new_id(), body.userId, chart_type, body.chartData,
                                     body.interpretation, expires)
    if body.userId is not None:
        await deps.cache.invalidate(keys=(keys.chart_by_pair(body.userId, chart_type),))
    return dict(row)


def _loaded(row) -> tuple:
    if row is None:
        return None, None, ()
    return encode(dict(row)), seconds_until(row["expiresAt"]), (keys.chart_tag(row["userId"]),)


async def get_chart(deps: Deps, chart_id: str) -> bytes | None:
    async def load():
        return _loaded(await deps.fill_db.fetchrow(Q.get_chart_by_id, chart_id))

    return await deps.cache.read_through(keys.chart_by_id(chart_id), deps.settings.cache_ttl_static, load)


async def get_chart_for(deps: Deps, user_id: str, chart_type: str) -> bytes | None:
    async def load():
        return _loaded(await deps.fill_db.fetchrow(Q.get_chart_by_pair, user_id, chart_type))

    return await deps.cache.read_through(keys.chart_by_pair(user_id, chart_type),
                                         deps.settings.cache_ttl_static, load)


async def delete_charts(deps: Deps, user_id: str, chart_type: str | None) -> int:
    async with invalidating_if_unknown(deps, tags=(keys.chart_tag(user_id),)):
        count = affected_rows(await deps.db.execute(Q.delete_charts_of_user, user_id, chart_type))
    await deps.cache.invalidate(tags=(keys.chart_tag(user_id),))
    return count


async def sweep_expired(deps: Deps, batch_size: int | None = None, metrics=None) -> SweepResult:
    """Delete expired rows, one short transaction per batch, until a batch comes back short."""
    return await sweep_table(deps, "chart_cache", batch_size, metrics)
