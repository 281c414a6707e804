"""The in-process backend: an LRU dict with per-entry expiry, tags and the epoch guard; also the
store of the near cache."""

from __future__ import annotations

import time
from collections import OrderedDict


class MemoryBackend:
    """An LRU dict with per-entry expiry; same semantics as the Redis backend, for one process."""

    name = "memory"

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self.entries: OrderedDict[str, tuple[float, bytes, tuple[str, ...]]] = OrderedDict()
        self.tags: dict[str, set[str]] = {}
        self.epoch = 0

    def _drop(self, key: str) -> None:
        """Remove an entry and its key from its tag sets (which go when empty): tag sets never leak."""
        item = self.entries.pop(key, None)
        if item is None:
            return
        for tag in item[2]:
            members = self.tags.get(tag)
            if members is not None:
                members.discard(key)
                if not members:
                    del self.tags[tag]

    def get_now(self, key: str) -> bytes | None:
        item = self.entries.get(key)
        if item is not None:
            if item[0] > time.monotonic():
                self.entries.move_to_end(key)
                return item[1]
            self._drop(key)
        return None

    async def get(self, key: str) -> tuple[bytes | None, int]:
        return self.get_now(key), self.epoch

    async def get_entry(self, key: str) -> tuple[bytes | None, int, float | None]:
        """(value, epoch, seconds left or None when unknown)."""
        value, epoch = await self.get(key)
        return value, epoch, None

    async def fill(self, key: str, value: bytes, ttl: float, tags: tuple[str, ...], epoch: int) -> bool:
        return self.fill_now(key, value, ttl, tags, epoch)

    def fill_now(self, key: str, value: bytes, ttl: float, tags: tuple[str, ...], epoch: int) -> bool:
        if epoch != self.epoch:
            return False
        self._drop(key)
        self.entries[key] = (time.monotonic() + ttl, value, tags)
        for tag in tags:
            self.tags.setdefault(tag, set()).add(key)
        while len(self.entries) > self.max_entries:
            self._drop(next(iter(self.entries)))
        return True

    async def invalidate(self, keys: tuple[str, ...], tags: tuple[str, ...], token: str | None = None) -> int:
        """Returns 0: the count of dropped keys only matters for a near cache, which Redis has."""
        self.invalidate_now(keys, tags)
        return 0

    def invalidate_now(self, keys, tags=()) -> None:
        self.epoch += 1
        for key in keys:
            self._drop(key)
        for tag in tags:
            for key in list(self.tags.get(tag, ())):
                self._drop(key)
            self.tags.pop(tag, None)

    async def flush_entries(self) -> int:
        """Every entry (what an overflow of remembered invalidations becomes, see Cache)."""
        count = len(self.entries)
        self.clear()
        return count

    def clear(self) -> None:
        self.epoch += 1
        self.entries.clear()
        self.tags.clear()

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass
