"""Birth data: validated beyond types (coordinates, IANA time zone), upserted, read (cached), deleted."""

from __future__ import annotations

import functools
import math
import zoneinfo

from ..deps import Deps
from ..ids import new_id
from ..problems import FieldError, Problem, not_found
from ..queries import Q
from ..schemas import NatalDataIn
from . import keys
from .per_user import cached_row_of_user, upsert_for_user
from .unknown_outcome import invalidating_if_unknown


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
    return await cached_row_of_user(deps, keys.natal_data_of(user_id), deps.settings.cache_ttl_user,
                                    Q.get_natal_data_by_user, user_id)


async def put_natal_data(deps: Deps, user_id: str, body: NatalDataIn) -> tuple[dict, bool]:
    validate_natal_data(body)
    return await upsert_for_user(deps, keys.natal_data_of(user_id), Q.upsert_natal_data, user_id, _args(body))


async def delete_natal_data(deps: Deps, user_id: str) -> None:
    async with invalidating_if_unknown(deps, keys=(keys.natal_data_of(user_id),)):
        status = await deps.db.execute(Q.delete_natal_data_by_user, user_id)
    if status.endswith(" 0"):
        raise not_found("natal data")
    await deps.cache.invalidate(keys=(keys.natal_data_of(user_id),))
