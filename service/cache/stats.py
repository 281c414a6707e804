"""Hit, miss and error counts of the cache since start (GET /v1/cache/stats)."""

from __future__ import annotations


class CacheStats:
    def __init__(self):
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def as_dict(self, backend: str) -> dict:
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses,
                "hitRate": round(self.hits / total, 4) if total else 0.0,
                "errors": self.errors, "backend": backend}
