"""One class per resource of the API (docs/API.md), each method one route."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from msgspec import UNSET

from .filters import FilterValue, list_params
from .models import (
    StoredStripeEvent,
    Account,
    Authenticator,
    CacheStats,
    Chart,
    ChartType,
    Count,
    Health,
    NatalData,
    Page,
    Role,
    Session,
    SessionAndUser,
    StripeWebhookAnswer,
    Subscription,
    SubscriptionStatus,
    User,
    UserWithRelations,
    Valid,
    VerificationToken,
    to_builtins,
)
from .transport import Transport, decode

T = TypeVar("T")
ITER_PAGE_SIZE = 100


def seg(value: str) -> str:
    """A path segment, escaped: ids, e-mails and provider account ids may hold `/`, `?`, `#`, `%`."""
    return quote(str(value), safe="")


def body(**fields: Any) -> dict[str, Any]:
    """A JSON body of the fields given (UNSET ones left out, None sent as null)."""
    return to_builtins({k: v for k, v in fields.items() if v is not UNSET})


class Resource:
    def __init__(self, transport: Transport):
        self._t = transport

    async def _call(self, method: str, path: str, answer: type[T] | None = None, **kwargs: Any) -> T:
        status, payload, _ = await self._t.request(method, path, **kwargs)
        if answer is None or status == 204:
            return None  # type: ignore[return-value]
        return decode(payload, answer, f"{method} {path}")

    async def _page(self, path: str, item: type, *, filter: Mapping[str, FilterValue] | None = None,
                    sort: str | Iterable[str] | None = None, select: Iterable[str] | None = None,
                    limit: int | None = None, page: int | None = None, cursor: str | None = None,
                    count: str | None = None, fixed: Mapping[str, str] | None = None) -> Page:
        params = list((fixed or {}).items()) + list_params(filter=filter, sort=sort, select=select, limit=limit,
                                                           page=page, cursor=cursor, count=count)
        # With select= the rows hold only the fields asked for: plain dicts.
        return await self._call("GET", path, Page[dict[str, Any]] if select else Page[item], params=params)

    async def _iter(self, path: str, item: type, *, filter: Mapping[str, FilterValue] | None = None,
                    sort: str | Iterable[str] | None = None, select: Iterable[str] | None = None,
                    page_size: int = ITER_PAGE_SIZE, fixed: Mapping[str, str] | None = None) -> AsyncIterator[Any]:
        """Every row, page by page. Keyset pages (`cursor`) when the service gives one, which stays
        correct and fast on deep pages; offset pages otherwise. No total is counted."""
        cursor: str | None = None
        page = 1
        while True:
            answer = await self._page(path, item, filter=filter, sort=sort, select=select, limit=page_size,
                                      cursor=cursor, page=None if cursor else page, count="none", fixed=fixed)
            for row in answer.data:
                yield row
            if not answer.pagination.hasNext or not answer.data:
                return
            cursor = answer.pagination.nextCursor
            page += 1


class Users(Resource):
    async def create(self, email: str, *, name: str | None = UNSET, image: str | None = UNSET,
                     password: str | None = UNSET, emailVerified: datetime | None = UNSET,
                     role: Role | str = UNSET, subscription: Mapping[str, Any] | None = UNSET,
                     natalData: Mapping[str, Any] | None = UNSET) -> UserWithRelations:
        return await self._call("POST", "/v1/users", UserWithRelations, json=body(
            email=email, name=name, image=image, password=password, emailVerified=emailVerified, role=role,
            subscription=subscription, natalData=natalData))

    async def create_many(self, users: Iterable[Mapping[str, Any]], *, skip_duplicates: bool = False) -> int:
        answer = await self._call("POST", "/v1/users/batch", Count,
                                  json=body(users=list(users), skipDuplicates=skip_duplicates))
        return answer.count

    async def get(self, user_id: str, *, include: Iterable[str] | None = None) -> UserWithRelations:
        params = {"include": ",".join(include)} if include else None
        return await self._call("GET", f"/v1/users/{seg(user_id)}", UserWithRelations, params=params)

    async def get_fields(self, user_id: str, select: Iterable[str]) -> dict[str, Any]:
        return await self._call("GET", f"/v1/users/{seg(user_id)}", dict[str, Any],
                                params={"select": ",".join(select)})

    async def get_by_email(self, email: str) -> User:
        return await self._call("GET", f"/v1/users/by-email/{seg(email)}", User)

    async def get_by_account(self, provider: str, provider_account_id: str) -> User:
        return await self._call("GET", f"/v1/users/by-account/{seg(provider)}/{seg(provider_account_id)}", User)

    async def list(self, **options: Any) -> Page[User]:
        """One page: filter=, sort=, select=, limit=, page=, cursor=, count= (see Lists in docs/API.md)."""
        return await self._page("/v1/users", User, **options)

    def iter(self, *, filter: Mapping[str, FilterValue] | None = None, sort: str | Iterable[str] | None = None,
             select: Iterable[str] | None = None, page_size: int = ITER_PAGE_SIZE) -> AsyncIterator[User]:
        """`async for user in client.users.iter(filter={"role": "ADMIN"})`: every matching user."""
        return self._iter("/v1/users", User, filter=filter, sort=sort, select=select, page_size=page_size)

    async def update(self, user_id: str, *, email: str = UNSET, name: str | None = UNSET,
                     image: str | None = UNSET, emailVerified: datetime | None = UNSET,
                     role: Role | str = UNSET) -> User:
        return await self._call("PATCH", f"/v1/users/{seg(user_id)}", User, idempotent=True, json=body(
            email=email, name=name, image=image, emailVerified=emailVerified, role=role))

    async def set_password(self, user_id: str, password: str) -> None:
        await self._call("PUT", f"/v1/users/{seg(user_id)}/password", json=body(password=password))

    async def verify_password(self, user_id: str, password: str) -> bool:
        answer = await self._call("POST", f"/v1/users/{seg(user_id)}/verify-password", Valid, idempotent=True,
                                  json=body(password=password))
        return answer.valid

    async def delete(self, user_id: str) -> None:
        await self._call("DELETE", f"/v1/users/{seg(user_id)}")

    async def delete_sessions(self, user_id: str) -> int:
        """Sign the user out everywhere; answers how many sessions there were."""
        return (await self._call("DELETE", f"/v1/users/{seg(user_id)}/sessions", Count)).count


class Accounts(Resource):
    async def link(self, *, userId: str, type: str, provider: str, providerAccountId: str,
                   refresh_token: str | None = None, access_token: str | None = None, expires_at: int | None = None,
                   token_type: str | None = None, scope: str | None = None, id_token: str | None = None,
                   session_state: str | None = None) -> Account:
        return await self._call("POST", "/v1/accounts", Account, json=body(
            userId=userId, type=type, provider=provider, providerAccountId=providerAccountId,
            refresh_token=refresh_token, access_token=access_token, expires_at=expires_at, token_type=token_type,
            scope=scope, id_token=id_token, session_state=session_state))

    async def get(self, provider: str, provider_account_id: str) -> Account:
        return await self._call("GET", f"/v1/accounts/{seg(provider)}/{seg(provider_account_id)}", Account)

    async def update_tokens(self, provider: str, provider_account_id: str, *, access_token: str | None = UNSET,
                            refresh_token: str | None = UNSET, expires_at: int | None = UNSET,
                            token_type: str | None = UNSET, scope: str | None = UNSET,
                            id_token: str | None = UNSET, session_state: str | None = UNSET) -> Account:
        """Refresh-token rotation: the fields given are replaced (None clears one), the others kept."""
        return await self._call(
            "PATCH", f"/v1/accounts/{seg(provider)}/{seg(provider_account_id)}", Account, idempotent=True,
            json=body(access_token=access_token, refresh_token=refresh_token, expires_at=expires_at,
                      token_type=token_type, scope=scope, id_token=id_token, session_state=session_state))

    async def unlink(self, provider: str, provider_account_id: str) -> None:
        await self._call("DELETE", f"/v1/accounts/{seg(provider)}/{seg(provider_account_id)}")

    async def list_for_user(self, user_id: str, **options: Any) -> Page[Account]:
        return await self._page(f"/v1/users/{seg(user_id)}/accounts", Account, **options)

    def iter_for_user(self, user_id: str, **options: Any) -> AsyncIterator[Account]:
        return self._iter(f"/v1/users/{seg(user_id)}/accounts", Account, **options)


class Sessions(Resource):
    """Session tokens travel only in bodies (they would be logged in a path)."""

    async def create(self, *, sessionToken: str, userId: str, expires: datetime) -> Session:
        return await self._call("POST", "/v1/sessions", Session,
                                json=body(sessionToken=sessionToken, userId=userId, expires=expires))

    async def lookup(self, session_token: str) -> SessionAndUser:
        return await self._call("POST", "/v1/sessions/lookup", SessionAndUser, idempotent=True,
                                json=body(sessionToken=session_token))

    async def update(self, session_token: str, expires: datetime) -> Session:
        return await self._call("POST", "/v1/sessions/update", Session, idempotent=True,
                                json=body(sessionToken=session_token, expires=expires))

    async def delete(self, session_token: str) -> Session:
        """Answers the deleted session; NotFound if there was none."""
        return await self._call("POST", "/v1/sessions/delete", Session, json=body(sessionToken=session_token))


class VerificationTokens(Resource):
    async def create(self, *, identifier: str, token: str, expires: datetime) -> VerificationToken:
        return await self._call("POST", "/v1/verification-tokens", VerificationToken,
                                json=body(identifier=identifier, token=token, expires=expires))

    async def use(self, token: str, identifier: str | None = None) -> VerificationToken:
        """Deletes and answers the token, at most once (NotFound after). Never retried: a second try
        after an applied first one would find it gone."""
        return await self._call("POST", "/v1/verification-tokens/use", VerificationToken,
                                json=body(token=token, identifier=identifier if identifier else UNSET))


class Authenticators(Resource):
    async def create(self, *, credentialID: str, userId: str, providerAccountId: str, credentialPublicKey: str,
                     counter: int, credentialDeviceType: str, credentialBackedUp: bool,
                     transports: str | None = None) -> Authenticator:
        return await self._call("POST", "/v1/authenticators", Authenticator, json=body(
            credentialID=credentialID, userId=userId, providerAccountId=providerAccountId,
            credentialPublicKey=credentialPublicKey, counter=counter, credentialDeviceType=credentialDeviceType,
            credentialBackedUp=credentialBackedUp, transports=transports))

    async def get(self, credential_id: str) -> Authenticator:
        return await self._call("GET", f"/v1/authenticators/{seg(credential_id)}", Authenticator)

    async def update_counter(self, credential_id: str, counter: int) -> Authenticator:
        return await self._call("PATCH", f"/v1/authenticators/{seg(credential_id)}", Authenticator,
                                idempotent=True, json=body(counter=counter))

    async def list_for_user(self, user_id: str, **options: Any) -> Page[Authenticator]:
        return await self._page(f"/v1/users/{seg(user_id)}/authenticators", Authenticator, **options)

    def iter_for_user(self, user_id: str, **options: Any) -> AsyncIterator[Authenticator]:
        return self._iter(f"/v1/users/{seg(user_id)}/authenticators", Authenticator, **options)


class Subscriptions(Resource):
    async def get(self, user_id: str) -> Subscription:
        return await self._call("GET", f"/v1/users/{seg(user_id)}/subscription", Subscription)

    async def put(self, user_id: str, *, status: SubscriptionStatus | str = UNSET,
                  stripeCustomerId: str | None = UNSET, stripeSubscriptionId: str | None = UNSET,
                  stripePriceId: str | None = UNSET, currentPeriodEnd: datetime | None = UNSET,
                  cancelAtPeriodEnd: bool = UNSET) -> Subscription:
        """Create or replace the user's subscription (fields left out take their defaults)."""
        return await self._call("PUT", f"/v1/users/{seg(user_id)}/subscription", Subscription, json=body(
            status=status, stripeCustomerId=stripeCustomerId, stripeSubscriptionId=stripeSubscriptionId,
            stripePriceId=stripePriceId, currentPeriodEnd=currentPeriodEnd, cancelAtPeriodEnd=cancelAtPeriodEnd))

    async def list(self, **options: Any) -> Page[Subscription]:
        return await self._page("/v1/subscriptions", Subscription, **options)

    def iter(self, **options: Any) -> AsyncIterator[Subscription]:
        return self._iter("/v1/subscriptions", Subscription, **options)


class NatalDataResource(Resource):
    async def get(self, user_id: str) -> NatalData:
        return await self._call("GET", f"/v1/users/{seg(user_id)}/natal-data", NatalData)

    async def put(self, user_id: str, *, birthDate: datetime, location: str, latitude: float | None = None,
                  longitude: float | None = None, timezone: str | None = None) -> NatalData:
        return await self._call("PUT", f"/v1/users/{seg(user_id)}/natal-data", NatalData, json=body(
            birthDate=birthDate, location=location, latitude=latitude, longitude=longitude, timezone=timezone))

    async def delete(self, user_id: str) -> None:
        await self._call("DELETE", f"/v1/users/{seg(user_id)}/natal-data")


class Charts(Resource):
    async def create(self, *, chartType: ChartType | str, chartData: Any, userId: str | None = None,
                     interpretation: str | None = None, ttlSeconds: int | None = UNSET,
                     expiresAt: datetime | None = UNSET) -> Chart:
        return await self._call("POST", "/v1/charts", Chart, json=body(
            chartType=chartType, chartData=chartData, userId=userId, interpretation=interpretation,
            ttlSeconds=ttlSeconds, expiresAt=expiresAt))

    async def get(self, chart_id: str) -> Chart:
        return await self._call("GET", f"/v1/charts/{seg(chart_id)}", Chart)

    async def newest(self, user_id: str, chart_type: ChartType | str) -> Chart:
        """The newest unexpired entry of that user and type."""
        kind = chart_type.value if isinstance(chart_type, ChartType) else chart_type
        return await self._call("GET", "/v1/charts", Chart, params={"userId": user_id, "chartType": kind})

    async def invalidate(self, user_id: str, chart_type: ChartType | str | None = None) -> int:
        params = {"userId": user_id}
        if chart_type is not None:
            params["chartType"] = chart_type.value if isinstance(chart_type, ChartType) else chart_type
        return (await self._call("DELETE", "/v1/charts", Count, params=params)).count

    async def sweep(self) -> int:
        return (await self._call("POST", "/v1/charts/sweep", Count)).count

    async def list(self, **options: Any) -> Page[Chart]:
        return await self._page("/v1/charts", Chart, **options)

    def iter(self, **options: Any) -> AsyncIterator[Chart]:
        return self._iter("/v1/charts", Chart, **options)


class Cache(Resource):
    async def stats(self) -> CacheStats:
        return await self._call("GET", "/v1/cache/stats", CacheStats)

    async def invalidate(self, tags: Iterable[str]) -> None:
        """Tags: `user:<userId>`, `chart:<userId>`."""
        await self._call("POST", "/v1/cache/invalidate", idempotent=True, json=body(tags=list(tags)))


class Operations(Resource):
    async def health(self) -> Health:
        return await self._call("GET", "/healthz", Health)

    async def ready(self) -> Health:
        """The readiness report, also when it is 503: `status` is "ok" or "unavailable". Not retried."""
        return await self._call("GET", "/readyz", Health, accept=frozenset({503}), idempotent=False)

    async def metrics(self) -> str:
        _, payload, _ = await self._t.request("GET", "/metrics")
        return payload.decode()

    async def openapi(self) -> dict[str, Any]:
        return await self._call("GET", "/openapi.json", dict[str, Any])

    async def stripe_events(self, **options: Any) -> Page[StoredStripeEvent]:
        """Stored Stripe events (write token), e.g. filter={"outcome": "conflict"}; newest first."""
        return await self._page("/v1/stripe/events", StoredStripeEvent, **options)

    async def stripe_event(self, event_id: str) -> StoredStripeEvent:
        """One stored Stripe event with its payload (write token)."""
        return await self._call("GET", f"/v1/stripe/events/{seg(event_id)}", StoredStripeEvent)

    async def stripe_webhook(self, payload: bytes, signature: str) -> StripeWebhookAnswer:
        """Forward a raw Stripe event (a relay, a replay tool). The service ignores duplicates, so a retry
        is safe; the bearer token is sent but the service checks the Stripe signature instead."""
        return await self._call("POST", "/v1/stripe/webhook", StripeWebhookAnswer, data=payload, idempotent=True,
                                headers={"Stripe-Signature": signature, "Content-Type": "application/json"})
