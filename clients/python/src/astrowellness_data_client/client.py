"""DataClient: the service's routes grouped by resource, over one kept-alive connection pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import aiohttp

from .resources import (
    Accounts,
    Authenticators,
    Cache,
    Charts,
    NatalDataResource,
    Operations,
    Sessions,
    Subscriptions,
    Users,
    VerificationTokens,
)
from .transport import DEFAULT_RETRY, RetryPolicy, Transport


class DataClient:
    """
        async with DataClient("http://data:8080", token) as client:
            user = await client.users.create(email="ada@example.com", name="Ada")
            async for admin in client.users.iter(filter={"role": "ADMIN"}):
                ...

    One client per process (or per event loop), shared by all tasks: it keeps its connections alive
    and reuses them. `timeout` bounds each try (seconds), `connect_timeout` the connection set-up.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0, connect_timeout: float | None = 3.0,
                 retry: RetryPolicy = DEFAULT_RETRY, max_connections: int = 100,
                 session: aiohttp.ClientSession | None = None,
                 trace_configs: Sequence[aiohttp.TraceConfig] | None = None, user_agent: str | None = None):
        self.transport = Transport(base_url, token, timeout=timeout, connect_timeout=connect_timeout, retry=retry,
                                   max_connections=max_connections, session=session, trace_configs=trace_configs,
                                   user_agent=user_agent)
        self.users = Users(self.transport)
        self.accounts = Accounts(self.transport)
        self.sessions = Sessions(self.transport)
        self.verification_tokens = VerificationTokens(self.transport)
        self.authenticators = Authenticators(self.transport)
        self.subscriptions = Subscriptions(self.transport)
        self.natal_data = NatalDataResource(self.transport)
        self.charts = Charts(self.transport)
        self.cache = Cache(self.transport)
        self.ops = Operations(self.transport)

    async def aclose(self) -> None:
        """Close the connections (a session passed in by the caller is left open)."""
        await self.transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()
