"""Per-caller budgets: one noisy service token gets 429 + Retry-After, the other callers do not notice.

Each caller (a service token's name, from SERVICE_TOKENS) may have at most `concurrency` requests in
flight in this process, and at most `expensive` expensive ones. A request is expensive when it is a
list query whose cost grows with the table rather than the page: a pattern filter (`like`/`ilike`,
negated or not) or an exact count (`count=exact`, or no `count` while that is listing.py's default). Expensive requests of all callers
together are also capped (`CALLER_EXPENSIVE_TOTAL`, default half the pool), so several noisy tokens
cannot take every connection either. Refusals answer at once instead of queueing for a connection:
queueing is what made every other caller time out.

CALLER_LIMITS = "name:concurrency:expensive,..." overrides the defaults per token name.

CallerLimits.serve (called by the edge middleware, app.py) also sets the request's context (caller name,
"has the client gone?") for work deeper down that is rationed per caller, such as password hashing
(passwords.py).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from aiohttp import web

from .problems import Problem

LIST_ROUTES = frozenset({"/v1/users", "/v1/users/{id}/accounts", "/v1/charts", "/v1/subscriptions"})
PATTERN_OPERATORS = ("like.", "ilike.", "not.like.", "not.ilike.")


class ClientGone(Exception):
    """The request's client disconnected before rationed work started; nobody is left to answer."""


CLIENT_CLOSED_REQUEST = 499  # nginx's status for "the client closed the connection"; logged, never sent


class RequestContext:
    """What work deeper down needs of its request: the caller's name, and whether the client has gone.
    A plain slotted class (set on every request), holding the request rather than a closure over it."""

    __slots__ = ("caller", "_request")

    def __init__(self, caller: str, request: web.BaseRequest):
        self.caller = caller
        self._request = request

    def client_gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()


REQUEST_CONTEXT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "request_context", default=None)


def current_caller() -> str:
    context = REQUEST_CONTEXT.get()
    return context.caller if context is not None else "-"


def client_gone() -> bool:
    context = REQUEST_CONTEXT.get()
    return context is not None and context.client_gone()


@dataclass(frozen=True)
class Budget:
    concurrency: int
    expensive: int


class LimitsError(ValueError):
    pass


def parse_caller_limits(spec: str) -> dict[str, Budget]:
    budgets = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        parts = item.split(":")
        try:
            if len(parts) != 3 or not parts[0]:
                raise ValueError
            budget = Budget(int(parts[1]), int(parts[2]))
            if budget.concurrency < 1 or budget.expensive < 0:
                raise ValueError
        except ValueError:
            raise LimitsError("CALLER_LIMITS entries are name:concurrency:expensive "
                              "(concurrency >= 1, expensive >= 0)") from None
        budgets[parts[0]] = budget
    return budgets


def _default_count_mode() -> str:
    """The count mode of a list request that names none: listing.py's (issue 15 adds a cheap `auto`
    default to its COUNT_MODES; before it, the default is an exact count)."""
    from . import listing

    return "auto" if "auto" in getattr(listing, "COUNT_MODES", ()) else "exact"


DEFAULT_COUNT_MODE = _default_count_mode()


def is_expensive(route: str, method: str, query) -> bool:
    """A list query with a pattern filter or an exact count (the route decides, then the query)."""
    if method != "GET" or route not in LIST_ROUTES:
        return False
    if route == "/v1/charts" and set(query) == {"userId", "chartType"}:
        return False  # the one-entry lookup, not a list (routes/charts.py)
    if query.get("count", DEFAULT_COUNT_MODE) == "exact":
        return True
    return any(value.startswith(PATTERN_OPERATORS) for value in query.values())


class CallerLimits:
    def __init__(self, budgets: dict[str, Budget], default: Budget, expensive_total: int, retry_after: int):
        self.budgets = budgets
        self.default = default
        self.expensive_total = expensive_total
        self.retry_after = retry_after
        # Requests in flight by caller name; a caller with none has no entry (plain dicts: this is
        # counted twice per request).
        self.in_flight: dict[str, int] = {}
        self.expensive_in_flight: dict[str, int] = {}

    def budget_of(self, caller: str) -> Budget:
        return self.budgets.get(caller, self.default)

    def _refuse(self, why: str) -> Problem:
        return Problem(429, why, headers={"Retry-After": str(self.retry_after)})

    def admit(self, caller: str, expensive: bool) -> None:
        budget = self.budgets.get(caller, self.default)
        in_flight = self.in_flight.get(caller, 0)
        if in_flight >= budget.concurrency:
            raise self._refuse(f"too many requests in flight for this token (at most {budget.concurrency})")
        if expensive:
            expensive_in_flight = self.expensive_in_flight.get(caller, 0)
            if expensive_in_flight >= budget.expensive:
                raise self._refuse("too many expensive list queries in flight for this token (at most "
                                   f"{budget.expensive}: pattern filters and exact counts); "
                                   "use count=none or estimated, or retry later")
            if sum(self.expensive_in_flight.values()) >= self.expensive_total:
                raise self._refuse("too many expensive list queries in flight; retry later")
            self.expensive_in_flight[caller] = expensive_in_flight + 1
        self.in_flight[caller] = in_flight + 1

    def release(self, caller: str, expensive: bool) -> None:
        _take_one(self.in_flight, caller)
        if expensive:
            _take_one(self.expensive_in_flight, caller)

    async def serve(self, request: web.Request, handler, caller, route: str):
        """The handler's answer, with the request's context set (for work deeper down) and, for a caller
        (None on a public route, which has no budget), within the caller's budget. Called by the edge
        middleware (app.py) after authentication, instead of being a middleware layer of its own."""
        if caller is None:
            token = REQUEST_CONTEXT.set(RequestContext("-", request))
            try:
                return await handler(request)
            finally:
                REQUEST_CONTEXT.reset(token)
        name = caller.name
        # The route first: the query string is parsed only for the list routes.
        expensive = route in LIST_ROUTES and is_expensive(route, request.method, request.query)
        in_flight = self.in_flight
        count = in_flight.get(name, 0)
        if expensive or count >= self.budgets.get(name, self.default).concurrency:
            self.admit(name, expensive)  # the full check (it refuses); before the context, none to reset
        else:  # admit()'s outcome for a cheap request within its budget, without the second lookups
            in_flight[name] = count + 1
        token = REQUEST_CONTEXT.set(RequestContext(name, request))
        try:
            return await handler(request)
        except ClientGone:
            return web.Response(status=CLIENT_CLOSED_REQUEST)
        finally:
            REQUEST_CONTEXT.reset(token)
            self.release(name, expensive)


def _take_one(in_flight: dict[str, int], caller: str) -> None:
    left = in_flight[caller] - 1
    if left > 0:
        in_flight[caller] = left
    else:
        del in_flight[caller]


def caller_limits_from(settings) -> CallerLimits:
    expensive_total = settings.caller_expensive_total or max(1, settings.pool_max_size // 2)
    return CallerLimits(parse_caller_limits(settings.caller_limits),
                        Budget(settings.caller_concurrency, settings.caller_expensive),
                        expensive_total, settings.caller_retry_after_seconds)
