"""Prometheus metrics: requests by route and status, latency, pool, cache. Served at /metrics.

Each app gets its own registry (tests build many apps in one process).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to answer, by route", ["route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.cache_invalidations = Counter("cache_invalidations", "Cache invalidations sent",
                                           registry=self.registry)
        self.sweep_deleted = Counter("chart_sweep_deleted_rows", "Expired chart rows deleted",
                                     registry=self.registry)
        # The sweeps of expired rows (service/data/sweeps.py), by table.
        self.swept_rows = Counter("expired_rows_swept", "Expired rows deleted by the sweeps", ["table"],
                                  registry=self.registry)
        self.sweep_batch = Histogram("sweep_batch_duration_seconds", "Time of one sweep batch (one DELETE)",
                                     ["table"], registry=self.registry,
                                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self._sources: list = []
        self._children: dict = {}
        self.registry.register(self)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per (method, route, status): labels() takes a lock.
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(method, route, status),
                                              self.latency.labels(route))
        children[0].inc()
        children[1].observe(seconds)

    def observe_sweep_batch(self, table: str, deleted: int, seconds: float) -> None:
        self.swept_rows.labels(table).inc(deleted)
        if table == "chart_cache":
            self.sweep_deleted.inc(deleted)
        self.sweep_batch.labels(table).observe(seconds)

    def watch(self, deps) -> None:
        self._sources.append(deps)

    def collect(self):
        """Read at scrape time: pool and cache state need no bookkeeping on the request path."""
        size = GaugeMetricFamily("db_pool_connections", "Pool connections", labels=["pool", "state"])
        cache = GaugeMetricFamily("cache_lookups", "Cache lookups since start", labels=["result"])
        for deps in self._sources:
            pools = {"primary": deps.db}
            if deps.read_db is not deps.db:
                pools["replica"] = deps.read_db
            for name, db in pools.items():
                size.add_metric([name, "open"], db.pool.get_size())
                size.add_metric([name, "idle"], db.pool.get_idle_size())
                size.add_metric([name, "max"], db.pool.get_max_size())
            stats = deps.cache.stats
            cache.add_metric(["hit"], stats.hits)
            cache.add_metric(["miss"], stats.misses)
            cache.add_metric(["error"], stats.errors)
        yield size
        yield cache

    def describe(self):
        return []

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS_KEY = "metrics"
