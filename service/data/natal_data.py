"""Birth data: validated beyond types (coordinates, IANA time zone), upserted, read (cached), deleted."""

from __future__ import annotations

import functools
import math
import zoneinfo

import msgspec

from ..deps import Deps
from ..ids import new_id
from ..problems import FieldError, Problem, not_found
from ..queries import Q
from ..schemas import NatalDataIn
from . import keys

encode = msgspec.json.Encoder().encode


@functools.cache
def _time_zones() -> frozenset[str]:
    # A fixed set, not ZoneInfo(name): no file lookups driven by client input.
    return frozenset(zoneinfo.available_timezones())


def validate_natal_data(body: NatalDataIn, prefix: str = "") -> None:
    errors = []
    if not body.location.strip():
        errors.append(FieldError(prefix + "location", "must not be empty"))
    if body.latitude is not None and not (math.isfinite(body.latitude) and -90 <= body.latitude <= 90):
        errors.append(FieldError(prefix + "latitude", "must be between -90 and 90"))
    if body.longitude is not None and not (math.isfinite(body.longitude) and -180 <= body.longitude <= 180):
        errors.append(FieldError(prefix + "longitude", "must be between -180 and 180"))
    if body.timezone is not None and body.timezone not in _time_zones():
        errors.append(FieldError(prefix + "timezone", "must be an IANA time zone name such as Europe/Paris"))
    if errors:
        raise Problem(422, "; ".join(f"{e.field}: {e.message}" for e in errors), errors)


def _args(body: NatalDataIn) -> tuple:
    return (body.birthDate, body.location.strip(), body.latitude, body.longitude, body.timezone)


async def insert_natal_data(conn, user_id: str, body: NatalDataIn) -> dict:
    validate_natal_data(body, "natalData.")
    return dict(await conn.fetchrow(Q.insert_natal_data, new_id(), user_id, *_args(body)))


async def get_natal_data(deps: Deps, user_id: str) -> bytes | None:
    async def load():
        row = await deps.read_db.fetchrow(Q.get_natal_data_by_user, user_id)
        return (encode(dict(row)) if row else None), None, (keys.user_tag(user_id),)

    return await deps.cache.read_through(keys.natal_data_of(user_id), deps.settings.cache_ttl_user, load)


async def put_natal_data(deps: Deps, user_id: str, body: NatalDataIn) -> tuple[dict, bool]:
    validate_natal_data(body)
    async with deps.db.transaction() as conn:
        if not await conn.fetchval(Q.user_exists, user_id):
            raise not_found("user")
        row = dict(await conn.fetchrow(Q.upsert_natal_data, new_id(), user_id, *_args(body)))
    await deps.cache.invalidate(keys=(keys.natal_data_of(user_id),))
    created = row.pop("inserted")
    return row, created


async def delete_natal_data(deps: Deps, user_id: str) -> None:
    status = await deps.db.execute(Q.delete_natal_data_by_user, user_id)
    if status.endswith(" 0"):
        raise not_found("natal data")
    await deps.cache.invalidate(keys=(keys.natal_data_of(user_id),))
