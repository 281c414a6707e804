"""The service's answers as msgspec Structs (docs/API.md). Times are timezone-aware datetimes.

Fields the service adds later are ignored when decoding, so a newer service does not break an older
client; a field this client expects and the service leaves out is a decoding error (a contract break).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import msgspec
from msgspec import UNSET, Struct, UnsetType

T = TypeVar("T")


class Role(str, Enum):
    USER = "USER"
    ADMIN = "ADMIN"


class SubscriptionStatus(str, Enum):
    INACTIVE = "INACTIVE"
    ACTIVE = "ACTIVE"
    CANCELLED = "CANCELLED"
    PAST_DUE = "PAST_DUE"
    TRIALING = "TRIALING"


class ChartType(str, Enum):
    TROPICAL = "TROPICAL"
    DRACONIC = "DRACONIC"
    HORARY = "HORARY"
    SYNASTRY = "SYNASTRY"
    PROGRESSED = "PROGRESSED"
    SOLAR_RETURN = "SOLAR_RETURN"


class Model(Struct, kw_only=True):
    """Base of answers."""


class User(Model):
    id: str
    email: str
    emailVerified: datetime | None
    name: str | None
    image: str | None
    role: Role
    createdAt: datetime
    updatedAt: datetime


class Subscription(Model):
    id: str
    userId: str
    stripeCustomerId: str | None
    stripeSubscriptionId: str | None
    stripePriceId: str | None
    status: SubscriptionStatus
    currentPeriodEnd: datetime | None
    cancelAtPeriodEnd: bool
    createdAt: datetime
    updatedAt: datetime
    cancelAt: datetime | None = None  # when a scheduled cancellation ends it (Stripe's cancel_at)


class NatalData(Model):
    id: str
    userId: str
    birthDate: datetime
    location: str
    latitude: float | None
    longitude: float | None
    timezone: str | None
    createdAt: datetime
    updatedAt: datetime


class Account(Model):
    id: str
    userId: str
    type: str
    provider: str
    providerAccountId: str
    refresh_token: str | None
    access_token: str | None
    expires_at: int | None
    token_type: str | None
    scope: str | None
    id_token: str | None
    session_state: str | None
    # Only when a stored token cannot be decrypted (that field is then null): field -> why.
    tokenErrors: dict[str, str] | None = None


class UserWithRelations(User):
    """A user with the relations asked for by `include=`; those not asked for are UNSET."""

    subscription: Subscription | None | UnsetType = UNSET
    natalData: NatalData | None | UnsetType = UNSET
    accounts: list[Account] | UnsetType = UNSET


class Session(Model):
    id: str
    sessionToken: str
    userId: str
    expires: datetime


class SessionAndUser(Model):
    session: Session
    user: User


class VerificationToken(Model):
    identifier: str
    token: str
    expires: datetime


class Authenticator(Model):
    credentialID: str
    userId: str
    providerAccountId: str
    credentialPublicKey: str
    counter: int
    credentialDeviceType: str
    credentialBackedUp: bool
    transports: str | None


class Chart(Model):
    id: str
    userId: str | None
    chartType: ChartType
    chartData: Any
    interpretation: str | None
    createdAt: datetime
    expiresAt: datetime


class Count(Model):
    count: int


class Valid(Model):
    valid: bool


class CacheStats(Model):
    hits: int
    misses: int
    hitRate: float
    errors: int
    backend: str


class Health(Model):
    status: str
    database: str | None = None
    redis: str | None = None


class Pagination(Model):
    page: int
    limit: int
    total: int | None
    totalPages: int | None
    hasNext: bool
    hasPrev: bool
    nextCursor: str | None = None
    totalIsEstimate: bool = False  # total is the planner's estimate (count=auto past the cap, or estimated)


class Page(Model, Generic[T]):
    """One page of a list route. Items are typed, or plain dicts when `select=` picked fields."""

    data: list[T]
    pagination: Pagination


class StripeWebhookAnswer(Model):
    received: bool
    outcome: str | None = None  # applied, pending, duplicate, ignored, conflict, rejected
    reason: str | None = None


class StoredStripeEvent(Model):
    """A stored Stripe event and what became of it (GET /v1/stripe/events; payload only from .get)."""

    id: str
    type: str
    created: int
    stripeSubscriptionId: str | None
    stripeCustomerId: str | None
    outcome: str | None
    reason: str | None
    receivedAt: datetime
    appliedAt: datetime | None
    payload: dict[str, Any] | UnsetType = UNSET


class FieldError(Model):
    field: str
    message: str


class ProblemBody(Model):
    type: str = "about:blank"
    title: str = ""
    status: int = 0
    detail: str = ""
    code: str = ""
    errors: list[FieldError] | None = None
    requestId: str | None = None
    traceId: str | None = None  # when the service traces (OTEL_*): quote it with the request id


def to_builtins(value: Any) -> Any:
    """Request bodies: Structs, datetimes (RFC 3339) and enums as JSON-ready values."""
    return msgspec.to_builtins(value)
