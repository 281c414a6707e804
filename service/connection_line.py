"""The line of callers waiting for a pooled connection: first come, first served, each with a deadline.

asyncpg's pool is not fair: a released connection goes to whichever caller asks next, usually a request
that has just arrived, while the callers already waiting are woken only to find it gone and queue again
at the back. Under load (W1: 32 clients, 10 connections) that left ~1 % of requests waiting 50 ms to
over 0.5 s while the others waited nothing, and made the service's p99 several times the bare
handler's (bench/RESULTS.md, "hot path"). Database (db.py) takes one slot of this line per connection
before asking the pool, and gives it back after the connection is back in the pool.

asyncio.Semaphore with asyncio.timeout would be as fair, but with a Timeout object and a loop timer set
and cancelled per waiting caller, and under that load nearly every request waits a little. Here all
waiters share one timer: they wait with the same timeout, so the oldest one's deadline comes first.
Used on the event loop's thread only.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ConnectionLine:
    def __init__(self, slots: int, timeout: float):
        self.free = slots  # slots nobody holds or waits for
        self.timeout = timeout
        self._waiters: deque[tuple[float, asyncio.Future]] = deque()  # (deadline, future), oldest first
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        return sum(1 for _, waiter in self._waiters if not waiter.done())

    def take_now(self) -> bool:
        """A slot without waiting, if one is free and nobody is in line before the caller."""
        if self.free and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        """A slot, in turn; TimeoutError after `timeout` seconds in line."""
        if self.take_now():
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append((loop.time() + self.timeout, waiter))
        if self._timer is None:
            self._timer = loop.call_at(self._waiters[0][0], self._expire)
        try:
            await waiter
        except asyncio.CancelledError:
            # The caller went away. Still waiting: its entry is skipped when its turn comes. Handed a
            # slot in the meantime (its task was cancelled before it could resume): the next one gets it.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.give_back()
            raise

    def give_back(self) -> None:
        """A slot comes back: to the oldest caller still waiting, else to the free ones."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()[1]
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1

    def _expire(self) -> None:
        """Due at the oldest waiter's deadline: every waiter past its deadline gets TimeoutError; then the
        timer is set for the next one (waiters served early leave it due too soon, which costs one look)."""
        self._timer = None
        waiters = self._waiters
        loop = asyncio.get_running_loop()
        now = loop.time()
        while waiters and (waiters[0][1].done() or waiters[0][0] <= now):
            waiter = waiters.popleft()[1]
            if not waiter.done():
                waiter.set_exception(TimeoutError())
        if waiters:
            self._timer = loop.call_at(waiters[0][0], self._expire)
