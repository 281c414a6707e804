"""Typed async client of the Astrowellness data service (docs/API.md of the service)."""

__version__ = "0.1.0"

from .client import DataClient  # noqa: E402
from .errors import (  # noqa: E402
    BadRequest,
    Conflict,
    DataClientError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    RequestTimeout,
    RouteNotFound,
    ServerError,
    Timeout,
    TransportError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    UnsupportedMediaType,
    ValidationFailed,
)
from .filters import eq, gt, gte, ilike, in_, is_, is_null, like, lt, lte, neq, not_  # noqa: E402
from .models import (  # noqa: E402
    Account,
    Authenticator,
    CacheStats,
    Chart,
    ChartType,
    Health,
    NatalData,
    Page,
    Pagination,
    Role,
    Session,
    SessionAndUser,
    Subscription,
    SubscriptionStatus,
    User,
    UserWithRelations,
    VerificationToken,
)
from .transport import NO_RETRIES, RetryPolicy  # noqa: E402

__all__ = [
    "Account", "Authenticator", "BadRequest", "CacheStats", "Chart", "ChartType", "Conflict", "DataClient",
    "DataClientError", "Forbidden", "Health", "MethodNotAllowed", "NO_RETRIES", "NatalData", "NotFound", "Page",
    "Pagination", "PayloadTooLarge", "ProblemError", "RateLimited", "RequestTimeout", "RetryPolicy", "Role",
    "RouteNotFound", "ServerError", "Session", "SessionAndUser", "Subscription", "SubscriptionStatus", "Timeout",
    "TransportError", "Unauthorized", "Unavailable", "UnexpectedResponse", "UnsupportedMediaType", "User",
    "UserWithRelations", "ValidationFailed", "VerificationToken", "eq", "gt", "gte", "ilike", "in_", "is_",
    "is_null", "like", "lt", "lte", "neq", "not_",
]
