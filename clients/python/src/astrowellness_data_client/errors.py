"""Exceptions: every problem+json answer is raised as a `ProblemError` subclass chosen by its `code`.

    try:
        await client.users.get(user_id)
    except NotFound:
        ...
    except ProblemError as exc:
        log.warning("data service said %s (%s), request %s", exc.code, exc.status, exc.request_id)
"""

from __future__ import annotations

from .models import FieldError, ProblemBody


class DataClientError(Exception):
    """Base of everything this client raises."""


class TransportError(DataClientError):
    """No answer: the connection failed or was cut."""


class Timeout(TransportError):
    """No answer within the client's timeout."""


class UnexpectedResponse(DataClientError):
    """An answer that is not the service's: no problem+json body, or JSON that does not fit the model."""

    def __init__(self, message: str, status: int | None = None, request_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class ProblemError(DataClientError):
    """The service answered an RFC 9457 problem."""

    def __init__(self, body: ProblemBody, status: int, request_id: str | None, retry_after: float | None = None):
        super().__init__(f"{status} {body.code or 'error'}: {body.detail or body.title}")
        self.status = status
        self.code = body.code
        self.title = body.title
        self.detail = body.detail
        self.type = body.type
        self.errors: list[FieldError] = list(body.errors or [])
        self.request_id = body.requestId or request_id
        self.retry_after = retry_after

    @property
    def requestId(self) -> str | None:
        return self.request_id

    @property
    def fields(self) -> set[str]:
        """The fields named in `errors`."""
        return {e.field for e in self.errors}


class BadRequest(ProblemError):
    """400: malformed JSON, an unknown query parameter, field or operator."""


class Unauthorized(ProblemError):
    """401: missing or unknown token."""


class Forbidden(ProblemError):
    """403: a read token on a write route."""


class NotFound(ProblemError):
    """404 `not_found`: the row does not exist."""


class RouteNotFound(ProblemError):
    """404 `route_not_found`: no such route — a wrong base URL or a client newer than the service."""


class MethodNotAllowed(ProblemError):
    """405."""


class RequestTimeout(ProblemError):
    """408: the body was sent too slowly."""


class Conflict(ProblemError):
    """409: a unique or foreign-key violation; `errors` names the field."""


class PayloadTooLarge(ProblemError):
    """413."""


class UnsupportedMediaType(ProblemError):
    """415."""


class ValidationFailed(ProblemError):
    """422: the body or a parameter is invalid; `errors` lists every invalid field."""


class RateLimited(ProblemError):
    """429: too many requests (from a proxy in front of the service); carries `retry_after`."""


class ServerError(ProblemError):
    """500 and other 5xx: a failure the service did not expect; quote `request_id`."""


class Unavailable(ProblemError):
    """503: the service's database is unreachable; carries `retry_after` (seconds)."""


BY_CODE: dict[str, type[ProblemError]] = {
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "route_not_found": RouteNotFound,
    "method_not_allowed": MethodNotAllowed,
    "request_timeout": RequestTimeout,
    "conflict": Conflict,
    "payload_too_large": PayloadTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "validation_error": ValidationFailed,
    "too_many_requests": RateLimited,
    "internal_error": ServerError,
    "unavailable": Unavailable,
}
BY_STATUS: dict[int, type[ProblemError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 405: MethodNotAllowed, 408: RequestTimeout,
    409: Conflict, 413: PayloadTooLarge, 415: UnsupportedMediaType, 422: ValidationFailed, 429: RateLimited,
    503: Unavailable,
}


def problem_class(code: str, status: int) -> type[ProblemError]:
    """The exception for a problem: by its code; by its status for codes this client does not know.
    A 404 is `NotFound` only when the service says `not_found`: any other 404 is a wrong route."""
    if code in BY_CODE:
        return BY_CODE[code]
    if status == 404:
        return RouteNotFound
    return BY_STATUS.get(status, ServerError if status >= 500 else ProblemError)
