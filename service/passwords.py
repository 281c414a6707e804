"""bcrypt hashing and checking, off the event loop, rationed so sign-ups cannot starve sign-ins.

A bcrypt job takes a core for a quarter of a second at cost 12, so password work is the easiest way to
make the service slow for everyone. PasswordPool bounds it:
* BCRYPT_THREADS threads (default: the cores) run jobs; bcrypt releases the GIL while it works.
* At most BCRYPT_QUEUE_SIZE jobs wait beyond the running ones (default: as many as there are threads),
  so a waiting job is never more than about one job's time from starting. A job that finds the pool
  full is refused at once: 503 with Retry-After, or 429 when its caller already holds more than its
  share (BCRYPT_CALLER_SHARE of all places) — then the noisy caller is told, not everybody.
* The wait is in the event loop, not in the executor's hidden queue: when a job's turn comes and its
  client has gone, it is dropped before it starts (a caller that gives up costs nothing more).
* A user without a password is checked against a dummy hash of the configured cost, so the answer
  takes as long as a real check and timing does not tell which users have a password.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from . import tracing
from .limits import ClientGone, client_gone, current_caller
from .metrics import BCRYPT_QUEUE_DEPTH, BCRYPT_SECONDS, BCRYPT_WAIT_SECONDS
from .problems import Problem, validation

MAX_BYTES = 72  # bcrypt's limit; bcrypt 5 raises on longer input instead of truncating


def password_bytes(password: str, field: str = "password") -> bytes:
    if not password:
        raise validation(field, "must not be empty")
    try:
        encoded = password.encode("utf-8")
    except UnicodeEncodeError:
        raise validation(field, "must be valid UTF-8 text") from None
    if len(encoded) > MAX_BYTES:
        raise validation(field, f"must be at most {MAX_BYTES} bytes in UTF-8")
    return encoded


class PasswordPool:
    def __init__(self, rounds: int, threads: int = 0, queue_size: int = 0, caller_share: float = 0.5,
                 retry_after: int = 5, caller_retry_after: int = 1):
        self.rounds = rounds
        self.threads = threads or os.cpu_count() or 1
        self.capacity = self.threads + (queue_size or self.threads)  # running + waiting
        self.caller_cap = max(1, math.floor(self.capacity * caller_share))
        self.retry_after = retry_after
        self.caller_retry_after = caller_retry_after
        self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="bcrypt")
        self._running = asyncio.Semaphore(self.threads)
        self.admitted = 0
        self.by_caller: Counter[str] = Counter()
        self.dropped = 0  # jobs dropped because their client had gone
        self.started = 0  # jobs handed to a thread
        self._dummy_hash: bytes | None = None
        self._dummy_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> PasswordPool:
        return cls(settings.bcrypt_rounds, settings.bcrypt_threads, settings.bcrypt_queue_size,
                   settings.bcrypt_caller_share, settings.retry_after_seconds, settings.caller_retry_after_seconds)

    def _admit(self, caller: str) -> None:
        over_share = self.by_caller[caller] >= self.caller_cap and self.caller_cap < self.capacity
        if over_share:
            raise Problem(429, "too many password checks or hashes in flight for this token; retry later",
                          headers={"Retry-After": str(self.caller_retry_after)})
        if self.admitted >= self.capacity:
            raise Problem(503, "password work is at capacity; retry later",
                          headers={"Retry-After": str(self.retry_after)})
        self.admitted += 1
        self.by_caller[caller] += 1

    def _release(self, caller: str) -> None:
        self.admitted -= 1
        self.by_caller[caller] -= 1
        if self.by_caller[caller] <= 0:
            del self.by_caller[caller]

    async def _run(self, operation: str, job, *args):
        """Admit one bcrypt job (or refuse it: 429/503), wait for a thread, run it there; measured:
        queue depth and wait, time on the thread, and a span when tracing is on.

        The job's place (its thread and its admission) is given back when the thread is done, not when
        the caller stops waiting: a cancelled caller (a batch whose sibling was refused, a shutdown) does
        not stop bcrypt already running, so freeing its place earlier would let work pile up in the
        executor's own unbounded queue."""
        caller = current_caller()
        self._admit(caller)
        submitted = time.perf_counter()
        BCRYPT_QUEUE_DEPTH.inc()
        try:
            await self._running.acquire()  # FIFO wait in the loop; a thread is free once we hold it
        except BaseException:  # cancelled while waiting: nothing started
            BCRYPT_QUEUE_DEPTH.dec()
            self._release(caller)
            raise
        BCRYPT_QUEUE_DEPTH.dec()
        if client_gone():
            self.dropped += 1
            self._running.release()
            self._release(caller)
            raise ClientGone()
        self.started += 1
        started = time.perf_counter()
        BCRYPT_WAIT_SECONDS.observe(started - submitted)
        future = asyncio.get_running_loop().run_in_executor(self._executor, job, *args)

        def finished(done: asyncio.Future) -> None:
            BCRYPT_SECONDS.labels(operation).observe(time.perf_counter() - started)
            self._running.release()
            self._release(caller)
            if not done.cancelled():
                done.exception()  # retrieved: a caller that left must not leave "never retrieved" noise

        future.add_done_callback(finished)
        if tracing.TRACER is None or tracing.RECORDING.get() is None:  # off, or request not sampled
            return await asyncio.shield(future)
        with tracing.client_span(f"bcrypt {operation}", "bcrypt"):
            return await asyncio.shield(future)

    async def hash(self, password: str, field: str = "password") -> str:
        encoded = password_bytes(password, field)
        hashed = await self._run("hash", lambda: bcrypt.hashpw(encoded, bcrypt.gensalt(self.rounds)))
        return hashed.decode("ascii")

    async def check(self, password: str, stored_hash: str | None) -> bool:
        encoded = password_bytes(password)
        if stored_hash is None:
            # Same work as a real check at the configured cost, then "no".
            await self._run("check", self._check_against_dummy, encoded)
            return False
        try:
            return await self._run("check", bcrypt.checkpw, encoded, stored_hash.encode("ascii"))
        except ValueError:  # a stored value that is not a bcrypt hash
            return False

    def _check_against_dummy(self, encoded: bytes) -> None:
        """In a pool thread, like any job: the dummy is made once, on first need, at the configured cost."""
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = bcrypt.hashpw(b"not a password", bcrypt.gensalt(self.rounds))
        bcrypt.checkpw(encoded, self._dummy_hash)

    async def hash_many(self, passwords: list[tuple[str, str]]) -> list[str]:
        """Hashes of (password, field) pairs, at most half the caller's share admitted at a time, so a
        batch request takes turns with other requests instead of filling the queue by itself."""
        for password, field in passwords:
            password_bytes(password, field)  # every 422 before any work
        results: list[str] = [""] * len(passwords)
        window = asyncio.Semaphore(max(1, self.caller_cap // 2))  # the caller's other requests get the rest

        async def one(i: int, password: str, field: str):
            async with window:
                results[i] = await self.hash(password, field)

        try:
            async with asyncio.TaskGroup() as group:  # one refusal cancels the jobs not yet started
                for i, (password, field) in enumerate(passwords):
                    group.create_task(one(i, password, field))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return results

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
