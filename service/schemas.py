"""msgspec Structs for every body and answer. Validation happens in decoding; OpenAPI is generated here.

Bodies forbid unknown fields (a typo is a 422, not silently ignored). Times must carry a time zone.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType


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


Time = Annotated[datetime, Meta(tz=True, description="RFC 3339 with a time zone; stored as UTC")]
TimeOut = Annotated[str, Meta(description="RFC 3339 UTC with milliseconds", examples=["2026-01-02T03:04:05.678Z"])]
Email = Annotated[str, Meta(min_length=3, max_length=320, pattern=r"^\s*[^@\s]+@[^@\s]+\s*$")]
Text = Annotated[str, Meta(max_length=2048)]
Id = Annotated[str, Meta(min_length=1, max_length=64)]
Password = Annotated[str, Meta(min_length=1, max_length=72,
                                description="plain text, 1 to 72 bytes in UTF-8; stored as a bcrypt hash")]
Token = Annotated[str, Meta(min_length=1, max_length=512)]


class Body(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies."""


# ---- users -------------------------------------------------------------------------------------------

class SubscriptionIn(Body):
    stripeCustomerId: Text | None = None
    stripeSubscriptionId: Text | None = None
    stripePriceId: Text | None = None
    status: SubscriptionStatus = SubscriptionStatus.INACTIVE
    currentPeriodEnd: Time | None = None
    cancelAtPeriodEnd: bool = False


class NatalDataIn(Body):
    birthDate: Time
    location: Annotated[str, Meta(max_length=512)]
    latitude: float | None = None
    longitude: float | None = None
    timezone: Annotated[str, Meta(max_length=64)] | None = None


class UserBatchItem(Body):
    email: Email
    name: Text | None = None
    image: Text | None = None
    password: Password | None = None
    emailVerified: Time | None = None
    role: Role = Role.USER


class UserCreate(UserBatchItem):
    """One user, optionally with its subscription and natal data (created in the same transaction)."""

    subscription: SubscriptionIn | None = None
    natalData: NatalDataIn | None = None


class UserBatch(Body):
    users: Annotated[list[UserBatchItem], Meta(max_length=10000)]
    skipDuplicates: bool = False


class UserPatch(Body):
    email: Email | UnsetType = UNSET
    name: Text | None | UnsetType = UNSET
    image: Text | None | UnsetType = UNSET
    emailVerified: Time | None | UnsetType = UNSET
    role: Role | UnsetType = UNSET


class PasswordIn(Body):
    password: Password


class User(Struct):
    id: str
    email: str
    emailVerified: TimeOut | None
    name: str | None
    image: str | None
    role: Role
    createdAt: TimeOut
    updatedAt: TimeOut


class Subscription(Struct):
    id: str
    userId: str
    stripeCustomerId: str | None
    stripeSubscriptionId: str | None
    stripePriceId: str | None
    status: SubscriptionStatus
    currentPeriodEnd: TimeOut | None
    cancelAtPeriodEnd: bool
    createdAt: TimeOut
    updatedAt: TimeOut
    cancelAt: TimeOut | None = None  # service-owned: when a scheduled cancellation ends it (Stripe cancel_at)


class NatalData(Struct):
    id: str
    userId: str
    birthDate: TimeOut
    location: str
    latitude: float | None
    longitude: float | None
    timezone: str | None
    createdAt: TimeOut
    updatedAt: TimeOut


class Account(Struct):
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


class UserWithRelations(User):
    subscription: Subscription | None | UnsetType = UNSET
    natalData: NatalData | None | UnsetType = UNSET
    accounts: list[Account] | UnsetType = UNSET


class Count(Struct):
    count: int


class Valid(Struct):
    valid: bool


# ---- accounts, sessions, verification tokens ---------------------------------------------------------

class AccountCreate(Body):
    userId: Id
    type: Text
    provider: Text
    providerAccountId: Text
    refresh_token: Annotated[str, Meta(max_length=8192)] | None = None
    access_token: Annotated[str, Meta(max_length=8192)] | None = None
    expires_at: Annotated[int, Meta(ge=-(2**31), lt=2**31)] | None = None
    token_type: Text | None = None
    scope: Text | None = None
    id_token: Annotated[str, Meta(max_length=8192)] | None = None
    session_state: Text | None = None


class SessionCreate(Body):
    sessionToken: Token
    userId: Id
    expires: Time


class SessionToken(Body):
    sessionToken: Token


class SessionUpdate(Body):
    sessionToken: Token
    expires: Time


class Session(Struct):
    id: str
    sessionToken: str
    userId: str
    expires: TimeOut


class SessionAndUser(Struct):
    session: Session
    user: User


class VerificationTokenCreate(Body):
    identifier: Text
    token: Token
    expires: Time


class VerificationTokenUse(Body):
    identifier: Text
    token: Token


class VerificationToken(Struct):
    identifier: str
    token: str
    expires: TimeOut


# ---- charts ------------------------------------------------------------------------------------------

class ChartCreate(Body):
    chartType: Annotated[str, Meta(description="a ChartType, any case", max_length=32)]
    chartData: Any
    userId: Id | None = None
    interpretation: Annotated[str, Meta(max_length=200000)] | None = None
    ttlSeconds: Annotated[int, Meta(gt=0, le=10 * 365 * 86400)] | None = None
    expiresAt: Time | None = None


class Chart(Struct):
    id: str
    userId: str | None
    chartType: ChartType
    chartData: Any
    interpretation: str | None
    createdAt: TimeOut
    expiresAt: TimeOut


# ---- cache and ops -----------------------------------------------------------------------------------

class CacheInvalidate(Body):
    tags: Annotated[list[Annotated[str, Meta(min_length=1, max_length=256)]], Meta(max_length=1000)]


class CacheStats(Struct):
    hits: int
    misses: int
    hitRate: float
    errors: int
    backend: str


class Health(Struct, omit_defaults=True):
    status: str
    database: str | None = None
    redis: str | None = None


class Page(Struct):
    page: int
    limit: int
    total: int | None
    totalPages: int | None
    hasNext: bool
    hasPrev: bool
    nextCursor: str | None = None


class ListPage(Struct):
    """A page of a list route; `data` holds the selected fields of each row."""

    data: list[dict[str, Any]]
    pagination: Page


def to_dict(struct: Struct) -> dict[str, Any]:
    """Set fields only (UNSET left out): what a PATCH wants to change."""
    return {k: v for k, v in msgspec.structs.asdict(struct).items() if v is not UNSET}
