"""A user's birth data (API.md § Natal data)."""

from __future__ import annotations

from ..data import natal_data
from ..deps import deps_of
from ..routing import (
    READ,
    WRITE,
    RouteTable,
    cached_json,
    no_content,
    read_body,
    upserted,
)
from ..schemas import NatalData, NatalDataIn

routes = RouteTable("natal data")


@routes.add("GET", "/v1/users/{id}/natal-data", scope=READ, summary="The user's birth data",
            answer=NatalData, errors=(404,))
async def get_natal_data(request):
    return cached_json(await natal_data.get_natal_data(deps_of(request), request.match_info["id"]), "natal data")


@routes.add("PUT", "/v1/users/{id}/natal-data", scope=WRITE,
            summary="Create (201) or replace (200) the user's birth data", body=NatalDataIn,
            answer=NatalData, also=(201,), errors=(404, 422))
async def put_natal_data(request):
    body = await read_body(request, NatalDataIn)
    row, created = await natal_data.put_natal_data(deps_of(request), request.match_info["id"], body)
    return upserted(row, created, request.rel_url.raw_path)


@routes.add("DELETE", "/v1/users/{id}/natal-data", scope=WRITE, summary="Delete the user's birth data",
            status=204, errors=(404,))
async def delete_natal_data(request):
    await natal_data.delete_natal_data(deps_of(request), request.match_info["id"])
    return no_content()
