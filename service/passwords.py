"""bcrypt hashing and checking, off the event loop, in a small dedicated thread pool.

The pool has fewer threads than the machine has cores, so a burst of sign-ups cannot take every core
from the event loop (bcrypt releases the GIL while it works).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from . import tracing
from .metrics import BCRYPT_QUEUE_DEPTH, BCRYPT_SECONDS, BCRYPT_WAIT_SECONDS
from .problems import validation

MAX_BYTES = 72  # bcrypt's limit; bcrypt 5 raises on longer input instead of truncating

_executor = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="bcrypt")
_queue_lock = threading.Lock()
# A real hash to check against when a user has no password, so the answer takes the same time.
_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(4))


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


async def _in_pool(operation: str, work, *args):
    """Run one bcrypt call on the pool, measured: queue depth and wait, time on the thread, and a span
    when tracing is on. The one place bcrypt work is submitted (issue 14's bounded pool goes here)."""
    submitted = time.perf_counter()
    queued = [True]
    BCRYPT_QUEUE_DEPTH.inc()

    def leave_queue() -> None:
        # Once, by the thread that starts the job or by the caller whose job was cancelled unstarted.
        with _queue_lock:
            if queued[0]:
                queued[0] = False
                BCRYPT_QUEUE_DEPTH.dec()

    def measured():
        started = time.perf_counter()
        leave_queue()
        BCRYPT_WAIT_SECONDS.observe(started - submitted)
        try:
            return work(*args)
        finally:
            BCRYPT_SECONDS.labels(operation).observe(time.perf_counter() - started)

    future = asyncio.get_running_loop().run_in_executor(_executor, measured)
    try:
        if tracing.TRACER is None:
            return await future
        with tracing.client_span(f"bcrypt {operation}", "bcrypt"):
            return await future
    finally:
        leave_queue()


async def hash_password(password: str, rounds: int, field: str = "password") -> str:
    encoded = password_bytes(password, field)
    hashed = await _in_pool("hash", lambda: bcrypt.hashpw(encoded, bcrypt.gensalt(rounds)))
    return hashed.decode("ascii")


async def check_password(password: str, stored_hash: str | None) -> bool:
    encoded = password_bytes(password)
    if stored_hash is None:
        # Same work as a real check (at the dummy's cost), then "no".
        await _in_pool("check", bcrypt.checkpw, encoded, _DUMMY_HASH)
        return False
    try:
        return await _in_pool("check", bcrypt.checkpw, encoded, stored_hash.encode("ascii"))
    except ValueError:  # a stored value that is not a bcrypt hash
        return False
