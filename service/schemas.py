"""msgspec Structs for every body and answer. Validation happens in decoding; OpenAPI is generated here.

Bodies forbid unknown fields (a typo is a 422, not silently ignored). Times must carry a time zone.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

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
EMAIL_PATTERN = r"^\s*[^@\s]+@[^@\s]+\s*$"
Email = Annotated[str, Meta(min_length=3, max_length=320, pattern=EMAIL_PATTERN)]
Text = Annotated[str, Meta(max_length=2048)]
Id = Annotated[str, Meta(min_length=1, max_length=64)]
Password = Annotated[str, Meta(min_length=1, max_length=72,
                                description="plain text, 1 to 72 bytes in UTF-8; stored as a bcrypt hash")]
TOKEN_MAX = 512
# Session and verification tokens are cookie and URL values: printable ASCII without spaces. A lookup
# with anything else (a forged, over-long cookie) is answered 404, like a token that is not stored.
TOKEN_PATTERN = r"^[!-~]{1,512}$"
Token = Annotated[str, Meta(min_length=1, max_length=TOKEN_MAX, pattern=TOKEN_PATTERN,
                            description="1 to 512 printable ASCII characters, no spaces")]
# In lookups: any string; one that cannot be a token is simply not found (routes/sessions.py).
TokenLookup = Annotated[str, Meta(description="a token; one that cannot exist is answered 404")]
LongText = Annotated[str, Meta(max_length=8192)]


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


class PasswordChange(PasswordIn):
    """A password change signs the user out of their other sessions, unless keepSessions is true.
    currentSessionToken names the session making the change, which is kept."""
    keepSessions: bool = False
    currentSessionToken: Annotated[str, Meta(max_length=512)] | None = None


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
    # Only when a stored token cannot be decrypted (its field is then null): field -> why.
    tokenErrors: dict[str, str] | UnsetType = UNSET


class UserWithRelations(User):
    subscription: Subscription | None | UnsetType = UNSET
    natalData: NatalData | None | UnsetType = UNSET
    accounts: list[Account] | UnsetType = UNSET


class Count(Struct):
    count: int


class Valid(Struct):
    valid: bool


# ---- accounts, sessions, verification tokens ---------------------------------------------------------

ExpiresAt = Annotated[int, Meta(ge=-(2**31), lt=2**31, description="seconds since 1970 (INTEGER column)")]


class AccountCreate(Body):
    userId: Id
    type: Text
    provider: Text
    providerAccountId: Text
    refresh_token: LongText | None = None
    access_token: LongText | None = None
    expires_at: ExpiresAt | None = None
    token_type: Text | None = None
    scope: Text | None = None
    id_token: LongText | None = None
    session_state: Text | None = None


class AccountTokensPatch(Body):
    """Refresh-token rotation: the fields sent are replaced (null clears one), the others kept."""

    access_token: LongText | None | UnsetType = UNSET
    refresh_token: LongText | None | UnsetType = UNSET
    expires_at: ExpiresAt | None | UnsetType = UNSET
    token_type: Text | None | UnsetType = UNSET
    scope: Text | None | UnsetType = UNSET
    id_token: LongText | None | UnsetType = UNSET
    session_state: Text | None | UnsetType = UNSET


class SessionCreate(Body):
    sessionToken: Token
    userId: Id
    expires: Time


class SessionToken(Body):
    sessionToken: TokenLookup


class SessionUpdate(Body):
    sessionToken: TokenLookup
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
    """The token alone is unique; an identifier, when given, must match too."""

    token: TokenLookup
    identifier: Text | None = None


class VerificationToken(Struct):
    identifier: str
    token: str
    expires: TimeOut


# ---- WebAuthn authenticators (passkeys) ---------------------------------------------------------------

Counter = Annotated[int, Meta(ge=0, lt=2**31, description="the signature counter (INTEGER column)")]


class AuthenticatorCreate(Body):
    credentialID: Annotated[str, Meta(min_length=1, max_length=1024, description="base64url credential id")]
    userId: Id
    providerAccountId: Text
    credentialPublicKey: Annotated[str, Meta(min_length=1, max_length=8192)]
    counter: Counter
    credentialDeviceType: Annotated[str, Meta(min_length=1, max_length=64,
                                              examples=["singleDevice", "multiDevice"])]
    credentialBackedUp: bool
    transports: Annotated[str, Meta(max_length=256, examples=["internal,hybrid"])] | None = None


class AuthenticatorCounterPatch(Body):
    counter: Counter


class Authenticator(Struct):
    credentialID: str
    userId: str
    providerAccountId: str
    credentialPublicKey: str
    counter: int
    credentialDeviceType: str
    credentialBackedUp: bool
    transports: str | None


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

# The tags the service files entries under (data/keys.py): user:<userId> covers the user, their
# subscription, natal data and session lookups; chart:<userId> (chart:- for no user) their charts.
CACHE_TAG_PATTERN = r"^(user|chart):.+$"
CacheTag = Annotated[str, Meta(min_length=1, max_length=256, pattern=CACHE_TAG_PATTERN,
                               description="user:<userId> or chart:<userId> (chart:- for charts of no user)",
                               examples=["user:clx2b3c4d0000abcdefgh1234"])]


class CacheInvalidate(Body):
    tags: Annotated[list[CacheTag], Meta(max_length=1000)]


class CacheStats(Struct):
    hits: int
    misses: int
    hitRate: float
    errors: int
    backend: str


class WebhookAnswer(Struct, omit_defaults=True):
    """What became of a correctly signed event (docs/API.md, "Stripe → subscription"): applied; pending
    (waits for its customer or user to be linked, or for Stripe's API); duplicate (this event id is
    stored already); ignored (older, the same state, an invoice, an unused type or mode); conflict (would
    re-link a user or customer: left for ops); rejected (unreadable: the reason says why)."""

    received: bool
    outcome: Literal["applied", "pending", "duplicate", "ignored", "conflict", "rejected"]
    reason: str | None = None


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
    totalIsEstimate: bool = False  # total is the planner's estimate (count=auto above the cap, estimated)


class ListPage(Struct):
    """A page of a list route; `data` holds the selected fields of each row."""

    data: list[dict[str, Any]]
    pagination: Page


def to_dict(struct: Struct) -> dict[str, Any]:
    """Set fields only (UNSET left out): what a PATCH wants to change."""
    return {k: v for k, v in msgspec.structs.asdict(struct).items() if v is not UNSET}
