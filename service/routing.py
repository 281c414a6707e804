"""The route table: every route says its scope, body and answer, which drives auth and /openapi.json."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec
from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

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


async def read_raw(request: web.Request) -> bytes:
    """The whole body. A client that sends it too slowly gets a 408, so slow clients hold neither a
    connection of the pool nor a handler for long; one that stops half-way (the connection closed, or a
    chunked body cut off) gets a 400: its fault, not a 500 with a traceback."""
    try:
        if request.content.is_eof():  # all of it has arrived (a small body comes with the headers): no wait
            return await request.read()
        # In a task of its own (wait_for): a client that disconnects half-way then fails the read (400)
        # instead of cancelling the handler (an asyncio.timeout block here answered 500).
        return await asyncio.wait_for(request.read(), request.app[SETTINGS].body_read_timeout)
    except TimeoutError:
        raise Problem(408, "the request body arrived too slowly") from None
    except (ClientPayloadError, ConnectionError, asyncio.IncompleteReadError, HttpProcessingError):
        raise Problem(400, "the request body was cut off before its end") from None


async def read_body(request: web.Request, struct: type):
    """Decode the JSON body into `struct`: 400 when it is not JSON, 422 when it does not fit or nests
    deeper than MAX_JSON_DEPTH. The body is read before any database connection is taken."""
    raw = await read_raw(request)
    if not raw:
        raise Problem(400, "a JSON body is required")
    max_depth = request.app[SETTINGS].max_json_depth
    decoder = _decoders.get(struct)
    if decoder is None:
        decoder = _decoders[struct] = msgspec.json.Decoder(struct)
    try:
        body = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise refused_body(raw, struct, exc) from None
    except RecursionError:  # deeper than msgspec goes (about 1,000 levels)
        raise validation(field_nested_too_deep(raw, max_depth) or "body", f"nests deeper than {max_depth} levels") \
            from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string.
        field = non_utf8_field(raw)
        if field is not None:
            raise validation(field, "must be valid UTF-8 text") from None
        raise Problem(400, f"malformed JSON: {exc}") from None
    # Typed fields have the schema's depth; only free-form ones (chartData: Any) can nest at will, and
    # every later layer (jsonb encoding, PostgreSQL, readers) walks them recursively.
    for name in _free_form_fields(struct):
        if _deeper_than(getattr(body, name, None), max_depth - 1):
            raise validation(field_nested_too_deep(raw, max_depth) or name, f"nests deeper than {max_depth} levels")
    return body


@functools.cache
def _free_form_fields(struct: type) -> tuple[str, ...]:
    info = msgspec.inspect.type_info(struct)
    fields = getattr(info, "fields", ())
    return tuple(f.name for f in fields if isinstance(f.type, msgspec.inspect.AnyType))


def _deeper_than(value, levels: int) -> bool:
    """Does `value` hold lists or dicts nested more than `levels` deep? Stops at the first such path."""
    if isinstance(value, dict):
        return levels <= 0 or any(_deeper_than(v, levels - 1) for v in value.values())
    if isinstance(value, list):
        return levels <= 0 or any(_deeper_than(v, levels - 1) for v in value)
    return False


_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"\s*:?|[\[\]{}]')


def field_nested_too_deep(raw: bytes, max_depth: int) -> str | None:
    """The path of keys (e.g. `chartData.a`) to the first object or array nested deeper than
    `max_depth`, or None. Walks every string and bracket: for the error message only."""
    depth = 0
    keys: list[str | None] = []  # the key being read at each depth
    for token in _JSON_TOKENS.finditer(raw):
        text = token.group()
        first = text[:1]
        if first in (b"{", b"["):
            depth += 1
            if depth > max_depth:
                return ".".join(k for k in keys if k) or "body"
            keys.append(None)
        elif first in (b"}", b"]"):
            depth -= 1
            if keys:
                keys.pop()
        elif text.endswith(b":") and keys:  # a string followed by a colon is a key
            keys[-1] = text[1:text.rindex(b'"')].decode("utf-8", "replace")
    return None


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
