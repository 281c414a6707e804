"""Hit, miss and error counts of the cache since start (GET /v1/cache/stats)."""

from __future__ import annotations


class CacheStats:
    def __init__(self):
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.by_kind: dict[tuple[str, str], int] = {}  # (key kind, "hit"|"miss") -> count, for /metrics

    def hit(self, key: str) -> None:
        self.hits += 1
        kind = (key.partition(":")[0], "hit")  # the kind is the key's first part: user, session, chart...
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def miss(self, key: str) -> None:
        self.misses += 1
        kind = (key.partition(":")[0], "miss")
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def as_dict(self, backend: str) -> dict:
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses,
                "hitRate": round(self.hits / total, 4) if total else 0.0,
                "errors": self.errors, "backend": backend}
