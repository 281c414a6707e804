"""Ids in the format of Prisma's `@default(cuid())` (CUID v1): 'c' + time + counter + host + random.

Written here rather than taken from the cuid2 package because the seed's ids are CUID v1 (25 chars,
'c' first, sortable by time) and cuid2 costs ~40 µs per id (SHA-3), which bounds batch inserts;
this costs ~2 µs. Collision resistance comes from the per-process counter, fingerprint and 8 random
base36 characters (from `secrets`), as in the original CUID.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import time

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_BLOCK = 36**4


def _base36(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
    return "".join(reversed(digits)).rjust(width, "0")[-width:]


def _fingerprint() -> str:
    host = sum(map(ord, socket.gethostname())) + 36
    return _base36(os.getpid(), 2) + _base36(host, 2)


_counter = itertools.count(secrets.randbelow(_BLOCK))
_FINGERPRINT = _fingerprint()


def new_id() -> str:
    millis = time.time_ns() // 1_000_000
    return (
        "c"
        + _base36(millis, 8)
        + _base36(next(_counter) % _BLOCK, 4)
        + _FINGERPRINT
        + _base36(secrets.randbits(42), 8)
    )


def reset_after_fork() -> None:
    """A forked worker gets its own fingerprint (its pid) so workers never produce the same id."""
    global _FINGERPRINT
    _FINGERPRINT = _fingerprint()
