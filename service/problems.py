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


def problem_response(status: int, detail: str, errors=None, headers=None, request_id=None) -> web.Response:
    code, title = TITLES.get(status, ("error", "Error"))
    body = ProblemBody(
        type=f"https://astrowellness.dev/problems/{code}", title=title, status=status,
        detail=detail, code=code, errors=errors, requestId=request_id,
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

def problem_for(exc: Exception, request: web.Request, request_id: str | None, retry_after: int) -> web.Response:
    """The problem+json answer for an exception raised while handling `request`.

    Called by the app's edge middleware (app.py) for every exception; re-raises only an HTTP exception
    below 400 (a redirect), which is not an error."""
    try:
        raise exc
    except Problem:
        return problem_response(exc.status, exc.detail, exc.errors, exc.headers, request_id)
    except msgspec.ValidationError:
        problem = from_validation_error(exc)
        return problem_response(422, problem.detail, problem.errors, None, request_id)
    except asyncpg.DataError:
        # SQLSTATE class 22: a value PostgreSQL cannot store (a NUL character, an out-of-range number).
        return problem_response(422, f"a value cannot be stored: {type(exc).__name__}", None, None, request_id)
    except asyncpg.IntegrityConstraintViolationError:
        problem = from_integrity_error(exc)
        return problem_response(409, problem.detail, problem.errors, None, request_id)
    except DatabaseUnavailable:
        log.warning("database unavailable: %s", exc)
        return problem_response(503, "the database is unavailable; retry later", None,
                                {"Retry-After": str(retry_after)}, request_id)
    except web.HTTPRequestEntityTooLarge:
        # aiohttp's exception does not keep the limit; the request does.
        return problem_response(413, f"request body is larger than {request.client_max_size} bytes",
                                None, None, request_id)
    except web.HTTPException:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow",)}
        return problem_response(exc.status, exc.reason or "error", None, headers, request_id)
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id})
        return problem_response(500, "unexpected error; quote the request id when reporting it",
                                None, None, request_id)
