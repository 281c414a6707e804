"""Prometheus metrics, served at /metrics. docs/operations.md § Metrics lists them and what they answer.

Each app gets its own registry (tests build many apps in one process). Two kinds of instruments:
* per app: requests and latency by route (observed by the edge middleware), and what is read at scrape
  time from the app's pools and cache (no bookkeeping on the request path);
* per process (module level, below): observed by code that has no app at hand — every pooled
  connection's statements, the bcrypt thread pool, the Stripe webhook, the chart sweep, and the
  background gauges (ops_gauges.py). Every app's registry exposes them.
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left

import prometheus_client.metrics
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# ---- instruments of the request path ------------------------------------------------------------------
# prometheus_client's Histogram takes a lock for the sum and another for the bucket on every observation,
# after a walk over the bounds in Python; the request path observes three (statement, pool wait, request)
# and counts one. These are observed on the event loop's thread only (handlers, asyncpg connections and
# /metrics all run there; each `serve --workers` process has its own), so they need no lock: a bisect and
# two additions. Scraped, they read exactly like prometheus_client's (same samples, `_created` included).


def _created_wanted() -> bool:
    return getattr(prometheus_client.metrics, "_use_created", True)  # PROMETHEUS_DISABLE_CREATED_SERIES


class _LoopFamily:
    """What LoopHistogram and LoopCounter share: a name, labels, and one child per label values."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]):
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._children: dict[tuple, object] = {}

    def _new_child(self):
        raise NotImplementedError

    def labels(self, *values):
        values = tuple(str(v) for v in values)
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new_child()
        return child


class LoopHistogram(_LoopFamily):
    """A labelled histogram observed on the event loop's thread: `labels(...)` once, then `observe(s)`."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], buckets: tuple[float, ...]):
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(float(b) for b in buckets)  # upper bounds; the +Inf bucket is implicit

    def _new_child(self) -> LoopHistogramChild:
        return LoopHistogramChild(self.bounds)

    def describe(self):
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        created = _created_wanted()
        for values, child in list(self._children.items()):
            cumulative = list(itertools.accumulate(child.counts))
            buckets = [(floatToGoString(b), n) for b, n in zip(self.bounds, cumulative)]
            family.add_metric(list(values), [*buckets, ("+Inf", cumulative[-1])], child.sum)
            if created:
                family.samples.append(Sample(self.name + "_created", dict(zip(self.labelnames, values)),
                                             child.created))
        yield family


class LoopHistogramChild:
    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last one is +Inf
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, i.e. Prometheus' `le` (a value on a bound is in its bucket)
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class LoopCounter(_LoopFamily):
    """A labelled counter incremented on the event loop's thread: `labels(...)` once, then `inc()`."""

    def _new_child(self) -> LoopCounterChild:
        return LoopCounterChild()

    def describe(self):
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self):
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        created = _created_wanted()
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value, created=child.created if created else None)
        yield family


class LoopCounterChild:
    __slots__ = ("created", "value")

    def __init__(self):
        self.value = 0
        self.created = time.time()

    def inc(self, amount: int = 1) -> None:
        self.value += amount


_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# ---- per process ----------------------------------------------------------------------------------

STATEMENT_SECONDS = LoopHistogram(
    "db_statement_duration_seconds", "Time of one SQL statement, by its sql/ name (other: unnamed SQL)",
    ("statement",), buckets=_FAST_BUCKETS)
POOL_WAIT_SECONDS = LoopHistogram(
    "db_pool_acquire_wait_seconds", "Time a caller waited for a pooled connection", ("pool",),
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10))
POOL_TIMEOUTS = Counter(
    "db_pool_acquire_timeouts", "Callers that got no connection in time (answered 503)", ["pool"],
    registry=None)
BCRYPT_QUEUE_DEPTH = Gauge("bcrypt_queue_depth", "bcrypt jobs waiting for a thread of the bcrypt pool",
                           registry=None)
BCRYPT_WAIT_SECONDS = Histogram(
    "bcrypt_queue_wait_seconds", "Time a bcrypt job waited for a thread", registry=None,
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
BCRYPT_SECONDS = Histogram(
    "bcrypt_duration_seconds", "Time of one bcrypt hash or check on its thread", ["operation"], registry=None,
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
STRIPE_EVENTS = Counter(
    "stripe_events_received", "Correctly signed Stripe events, by what applying them did", ["outcome"],
    registry=None)
STRIPE_BACKLOG = Gauge(
    "stripe_events_backlog", "Stored Stripe events not applied, by state (refreshed in the background)",
    ["state"], registry=None)
STRIPE_BACKLOG_AGE = Gauge(
    "stripe_events_backlog_oldest_age_seconds", "Age of the oldest Stripe event not applied (0: none)",
    registry=None)
SWEEP_RUNS = Counter("chart_sweep_runs", "Chart cache sweeps, by result (ok, failed)", ["result"],
                     registry=None)
SWEEP_DELETED = Counter("chart_sweep_deleted_rows", "Expired chart rows deleted", registry=None)
SWEEP_BATCHES = Counter("chart_sweep_batches", "Delete batches run by the chart sweeps", registry=None)
SWEEP_LAST_SUCCESS = Gauge("chart_sweep_last_success_timestamp_seconds",
                           "Unix time the last chart sweep finished (0: none yet)", registry=None)
REPLICA_LAG = Gauge("db_replica_lag_seconds", "Read replica's replay lag (only with DATABASE_READ_URL)",
                    registry=None)
MIGRATIONS_PENDING = Gauge("schema_migrations_pending", "Migrations in migrations/ not applied", registry=None)
MIGRATIONS_DRIFTED = Gauge("schema_migrations_drifted", "Applied migrations whose file changed since",
                           registry=None)
GAUGES_REFRESHED = Gauge("ops_gauges_last_refresh_timestamp_seconds",
                         "Unix time the background gauges (backlog, lag, migrations) were last read",
                         registry=None)

PROCESS_WIDE = (STATEMENT_SECONDS, POOL_WAIT_SECONDS, POOL_TIMEOUTS, BCRYPT_QUEUE_DEPTH, BCRYPT_WAIT_SECONDS,
                BCRYPT_SECONDS, STRIPE_EVENTS, STRIPE_BACKLOG, STRIPE_BACKLOG_AGE, SWEEP_RUNS, SWEEP_DELETED,
                SWEEP_BATCHES, SWEEP_LAST_SUCCESS, MIGRATIONS_PENDING, MIGRATIONS_DRIFTED, GAUGES_REFRESHED)
# process_* (CPU, memory, open files), python_info and python_gc_*
RUNTIME_COLLECTORS = (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = LoopCounter("http_requests", "HTTP requests answered", ("method", "route", "status"))
        self.latency = LoopHistogram(
            "http_request_duration_seconds", "Time to answer, by route", ("route",),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        # The sweeps of expired rows (service/data/sweeps.py), by table: per app, so a test reads its own.
        self.swept_rows = Counter("expired_rows_swept", "Expired rows deleted by the sweeps", ["table"],
                                  registry=self.registry)
        self.sweep_batch = Histogram("sweep_batch_duration_seconds", "Time of one sweep batch (one DELETE)",
                                     ["table"], registry=self.registry,
                                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self._sources: list = []
        self._children: dict = {}
        self._replica_lag_shown = False
        self.registry.register(self)
        for collector in (self.requests, self.latency, *PROCESS_WIDE, *RUNTIME_COLLECTORS):
            self.registry.register(collector)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per (method, route, status); the two updates are
        # inlined (LoopCounterChild.inc, LoopHistogramChild.observe): this runs on every request.
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(method, route, status),
                                              self.latency.labels(route))
        count, latency = children
        count.value += 1
        latency.counts[bisect_left(latency.bounds, seconds)] += 1
        latency.sum += seconds

    def observe_sweep_batch(self, table: str, deleted: int, seconds: float) -> None:
        self.swept_rows.labels(table).inc(deleted)
        self.sweep_batch.labels(table).observe(seconds)

    def watch(self, deps) -> None:
        self._sources.append(deps)
        if deps.read_db is not deps.db and not self._replica_lag_shown:
            # the replica's lag is worth a series only where there is a replica
            self.registry.register(REPLICA_LAG)
            self._replica_lag_shown = True

    def collect(self):
        """Read at scrape time: pool and cache state need no bookkeeping on the request path."""
        size = GaugeMetricFamily("db_pool_connections", "Pool connections by state (open, idle, in_use, max)",
                                 labels=["pool", "state"])
        waiting = GaugeMetricFamily("db_pool_waiting", "Callers waiting for a pooled connection now",
                                    labels=["pool"])
        lookups = CounterMetricFamily("cache_lookups", "Cache lookups by key kind and result (hit, miss)",
                                      labels=["kind", "result"])
        errors = CounterMetricFamily("cache_errors", "Cache backend (Redis) calls that failed or timed out")
        ack_timeouts = CounterMetricFamily(
            "cache_near_ack_timeouts", "Writes answered after a near-cache lease without every other "
            "instance's acknowledgement of their invalidation (those instances stopped serving near copies)")
        for deps in self._sources:
            pools = {"primary": deps.db}
            if deps.read_db is not deps.db:
                pools["replica"] = deps.read_db.replica
            for name, db in pools.items():
                open_, idle = db.pool.get_size(), db.pool.get_idle_size()
                size.add_metric([name, "open"], open_)
                size.add_metric([name, "idle"], idle)
                size.add_metric([name, "in_use"], open_ - idle)
                size.add_metric([name, "max"], db.pool.get_max_size())
                waiting.add_metric([name], db.waiting)
            stats = deps.cache.stats
            for (kind, result), count in stats.by_kind.items():
                lookups.add_metric([kind, result], count)
            errors.add_metric([], stats.errors)
            near = deps.cache.near
            ack_timeouts.add_metric([], near.ack_timeouts if near is not None else 0)
        yield size
        yield waiting
        yield lookups
        yield errors
        yield ack_timeouts

    def describe(self):
        return []

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS_KEY = "metrics"
