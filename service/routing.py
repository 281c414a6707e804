"""The route table: every route says its scope, body and answer, which drives auth and /openapi.json."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec
from aiohttp import web

from .deps import SETTINGS
from .problems import Problem, not_found, validation
from .validation import refused_body

READ, WRITE, PUBLIC = "read", "write", "public"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Callable
    scope: str
    summary: str
    body: Any = None
    answer: Any = None
    status: int = 200
    errors: tuple[int, ...] = ()
    query: tuple[tuple, ...] = ()  # (name, description[, JSON schema]) of query parameters
    also: tuple[int, ...] = ()  # other success statuses (an upsert answers 200 or 201)
    headers: tuple[tuple[str, str], ...] = ()  # (name, description) of required request headers
    tag: str = ""
    listing: Any = None  # a list route's ListSpec: its query parameters and typed page in /openapi.json
    item: Any = None  # the Struct a list route's rows are (their selected fields)
    selectable: bool = False  # ?select= may leave fields out of the answer: none is required


@dataclass
class RouteTable:
    tag: str
    routes: list[Route] = field(default_factory=list)

    def add(self, method: str, path: str, *, scope: str, summary: str, **info):
        def register(handler):
            self.routes.append(Route(method, path, handler, scope, summary, tag=self.tag, **info))
            handler.scope = scope  # read by the auth middleware from the matched handler
            return handler

        return register


# ---- bodies and answers -------------------------------------------------------------------------------

_decoders: dict[type, msgspec.json.Decoder] = {}
_encode = msgspec.json.Encoder().encode


async def read_body(request: web.Request, struct: type):
    """Decode the JSON body into `struct`: 400 when it is not JSON, 422 when it does not fit.

    The body is read before any database connection is taken, and a client that sends it too slowly
    gets a 408, so slow clients hold neither a connection of the pool nor a handler for long."""
    try:
        raw = await asyncio.wait_for(request.read(), request.app[SETTINGS].body_read_timeout)
    except TimeoutError:
        raise Problem(408, "the request body arrived too slowly") from None
    if not raw:
        raise Problem(400, "a JSON body is required")
    decoder = _decoders.get(struct)
    if decoder is None:
        decoder = _decoders[struct] = msgspec.json.Decoder(struct)
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise refused_body(raw, struct, exc) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string.
        field = non_utf8_field(raw)
        if field is not None:
            raise validation(field, "must be valid UTF-8 text") from None
        raise Problem(400, f"malformed JSON: {exc}") from None


def non_utf8_field(raw: bytes) -> str | None:
    """For a body msgspec refused: is it well-formed JSON whose text is not UTF-8 (invalid bytes, or a
    lone surrogate escape such as \\ud800)? Then the path of the first such string, for a 422."""
    try:
        document = json.loads(raw.decode("utf-8", "surrogateescape"))
    except ValueError:
        return None

    def walk(value, path):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return path or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                found = walk(key, path) or walk(item, f"{path}.{key}" if path else key)
                if found:
                    return found
        elif isinstance(value, list):
            for i, item in enumerate(value):
                found = walk(item, f"{path}[{i}]")
                if found:
                    return found
        return None

    return walk(document, "")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(data), status=status, content_type="application/json")


def created(data: Any, location: str) -> web.Response:
    """201 with the new resource and where to read it again (`location`: a path, its parts quoted)."""
    response = json_response(data, 201)
    response.headers["Location"] = location
    return response


def upserted(data: Any, was_created: bool, path: str) -> web.Response:
    """A PUT's answer: 201 with Location (the PUT's own path) when it created the resource, else 200."""
    return created(data, path) if was_created else json_response(data)


def path_part(value: str) -> str:
    """A value as one path segment of a Location (a provider id may hold '/', '?', '#' or spaces)."""
    return quote(value, safe="")


def cached_json(body: bytes | None, what: str) -> web.Response:
    """An answer that is already encoded JSON (from the cache or a data function), or a 404 problem."""
    if body is None:
        raise not_found(what)
    return web.Response(body=body, content_type="application/json")


def no_content() -> web.Response:
    return web.Response(status=204)
