"""RFC 9457 problem+json: the error type handlers raise, and the one middleware that writes them all."""

from __future__ import annotations

import logging
import re

import asyncpg
import msgspec
from aiohttp import web

from .db import DatabaseUnavailable

log = logging.getLogger("service.errors")

TITLES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    408: ("request_timeout", "Request timeout"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "Validation failed"),
    429: ("too_many_requests", "Too many requests"),
    500: ("internal_error", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}
# A path no route serves (a wrong base URL, a typo) is not a missing row: its own code, so a client
# never reads "no such route" as "no such user".
ROUTE_NOT_FOUND = "route_not_found"


class FieldError(msgspec.Struct):
    field: str
    message: str


class ProblemBody(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None
    requestId: str | None = None
    traceId: str | None = None  # with tracing on: the trace to look up (W3C trace id, 32 hex digits)


class Problem(Exception):
    def __init__(self, status: int, detail: str, errors: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def not_found(what: str) -> Problem:
    return Problem(404, f"{what} not found")


def validation(field: str, message: str) -> Problem:
    return Problem(422, f"{field}: {message}", [FieldError(field, message)])


def bad_request(field: str, message: str) -> Problem:
    return Problem(400, f"{field}: {message}", [FieldError(field, message)])


_encode = msgspec.json.Encoder().encode


def problem_response(status: int, detail: str, errors=None, headers=None, request_id=None,
                     trace_id=None, code: str | None = None) -> web.Response:
    default_code, title = TITLES.get(status, ("error", "Error"))
    code = code or default_code
    body = ProblemBody(
        type=f"https://astrowellness.dev/problems/{code}", title=title, status=status,
        detail=detail, code=code, errors=errors, requestId=request_id, traceId=trace_id,
    )
    return web.Response(body=_encode(body), status=status, headers=headers,
                        content_type="application/problem+json")


# ---- msgspec errors -> 400 / 422 with the field named -------------------------------------------

_AT_PATH = re.compile(r" - at `\$\.?(.*)`$")
_MISSING = re.compile(r"Object missing required field `(.+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(.+)`")


def from_validation_error(exc: msgspec.ValidationError) -> Problem:
    """'Expected `int`, got `str` - at `$.user.age`' -> 422 naming user.age."""
    text = str(exc)
    match = _AT_PATH.search(text)
    prefix = match.group(1) if match else ""
    message = _AT_PATH.sub("", text)
    for pattern in (_MISSING, _UNKNOWN):
        inner = pattern.search(message)
        if inner:
            field = f"{prefix}.{inner.group(1)}" if prefix else inner.group(1)
            return validation(field, "is required" if pattern is _MISSING else "is not a known field")
    return validation(prefix or "body", message)


# ---- database constraint errors -> 409 naming the field -----------------------------------------

_KEY_COLUMNS = re.compile(r"Key \((.+?)\)=")


def conflict_fields(exc: asyncpg.PostgresError) -> list[str]:
    match = _KEY_COLUMNS.search(getattr(exc, "detail", "") or "")
    if not match:
        return [getattr(exc, "column_name", None) or "body"]
    return [c.strip().strip('"') for c in match.group(1).split(",")]


def from_integrity_error(exc: asyncpg.IntegrityConstraintViolationError) -> Problem:
    fields = conflict_fields(exc)
    if isinstance(exc, asyncpg.UniqueViolationError):
        detail = f"{', '.join(fields)} already taken"
        return Problem(409, detail, [FieldError(f, "already taken") for f in fields])
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        detail = f"{', '.join(fields)} refers to something that does not exist"
        return Problem(409, detail, [FieldError(f, "refers to something that does not exist") for f in fields])
    return Problem(409, "the change conflicts with the data's constraints")


# ---- every error a handler raises -> its problem answer ---------------------------------------------

def problem_for(exc: Exception, request: web.Request, request_id: str | None, retry_after: int,
                trace_id: str | None = None) -> web.Response:
    """The problem+json answer for an exception raised while handling `request`.

    Called by the app's edge middleware (app.py) for every exception; re-raises only an HTTP exception
    below 400 (a redirect), which is not an error."""
    ids = {"request_id": request_id, "trace_id": trace_id}
    try:
        raise exc
    except Problem:
        return problem_response(exc.status, exc.detail, exc.errors, exc.headers, **ids)
    except msgspec.ValidationError:
        problem = from_validation_error(exc)
        return problem_response(422, problem.detail, problem.errors, None, **ids)
    except asyncpg.DataError:
        # SQLSTATE class 22: a value PostgreSQL cannot store (a NUL character, an out-of-range number).
        return problem_response(422, f"a value cannot be stored: {type(exc).__name__}", None, None, **ids)
    except asyncpg.IntegrityConstraintViolationError:
        problem = from_integrity_error(exc)
        return problem_response(409, problem.detail, problem.errors, None, **ids)
    except DatabaseUnavailable:
        log.warning("database unavailable: %s", exc, extra={k: v for k, v in ids.items() if v})
        return problem_response(503, "the database is unavailable; retry later", None,
                                {"Retry-After": str(retry_after)}, **ids)
    except web.HTTPRequestEntityTooLarge:
        # aiohttp's exception does not keep the limit; the request does.
        return problem_response(413, f"request body is larger than {request.client_max_size} bytes",
                                None, None, **ids)
    except web.HTTPException:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow",)}
        if exc.status == 404 and request.match_info.route.resource is None:
            return problem_response(404, "no route serves this path; check the base URL and the method",
                                    None, headers, code=ROUTE_NOT_FOUND, **ids)
        return problem_response(exc.status, exc.reason or "error", None, headers, **ids)
    except Exception:
        log.exception("unhandled error", extra={k: v for k, v in ids.items() if v})
        return problem_response(500, "unexpected error; quote the request id when reporting it",
                                None, None, **ids)
