"""Settings: one msgspec Struct, defaults from config/defaults.toml, overridden by the environment."""

from __future__ import annotations

import os
import tomllib
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from . import CONFIG_DIR
from .settings_validation import SettingsError, convert

# Ranges and choices live on the fields; settings_validation turns a bad value into one line naming the
# variable (`PORT must be 1-65535, got 99999`).
Port = Annotated[int, Meta(ge=1, le=65535)]
Count = Annotated[int, Meta(ge=0)]
AtLeastOne = Annotated[int, Meta(ge=1)]
# Finite upper bounds: "inf" parses as a float, and PostgreSQL refuses timeouts past 2^31-1 ms.
Seconds = Annotated[float, Meta(ge=0, le=86400)]
PositiveSeconds = Annotated[float, Meta(gt=0, le=86400)]
Milliseconds = Annotated[int, Meta(ge=0, le=2_147_483_647)]
ENVIRONMENTS = ("development", "test", "staging", "production")


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    database_url: str | None = None
    database_read_url: str | None = None
    redis_url: str | None = None
    environment: Literal[ENVIRONMENTS] = "development"
    host: str = "127.0.0.1"
    port: Port = 8080
    data_dir: str = ".data"

    service_tokens: str = ""
    stripe_webhook_secret: str = ""
    stripe_tolerance_seconds: Count = 300
    bcrypt_rounds: Annotated[int, Meta(ge=4, le=31)] = 12
    field_encryption_key: str = ""

    pool_min_size: Count = 2
    pool_max_size: AtLeastOne = 10
    pool_acquire_timeout: PositiveSeconds = 5.0
    statement_cache_size: Count = 1024
    statement_timeout_ms: Milliseconds = 15000
    connect_timeout: PositiveSeconds = 5.0
    retry_after_seconds: Count = 5

    max_body_bytes: AtLeastOne = 1048576
    body_read_timeout: PositiveSeconds = 10.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_queries: bool = False

    cache_ttl_user: Count = 300
    cache_ttl_subscription: Count = 60
    cache_ttl_static: Count = 3600
    cache_ttl_not_found: Count = 5
    cache_max_entries: Count = 10000
    redis_timeout: PositiveSeconds = 0.25
    cache_prefix: str = "aw:"
    cache_near_ttl: Seconds = 30.0
    # A write waits at most this long for another instance to acknowledge its invalidation; an instance
    # that has not heard Redis for this long serves no near copy (service/cache/near_acks.py).
    cache_near_lease: Annotated[float, Meta(ge=0.02, le=60)] = 0.25
    cache_enabled: bool = True

    sweep_interval_seconds: Seconds = 300
    bcrypt_threads: Count = 0  # 0: as many as the cores
    sweep_batch_size: AtLeastOne = 1000  # bench/scale.py: 5,000-row batches took up to 1 s under load

    migrate_lock_timeout: Count = 600

    # deploy safety (issue 13)
    migrate_lock_wait: Seconds = 60.0  # seconds a lock-blocked migration step keeps retrying
    migrate_step_lock_timeout_ms: Annotated[int, Meta(ge=1, le=600000)] = 2000  # one try's lock_timeout: how long others queue behind it

    # list cost (issue 15): see docs/API.md § Lists
    list_count_cap: AtLeastOne = 10000
    list_search_count_cap: AtLeastOne = 1000  # the same for like/ilike searches (their count and row budget)
    list_count_cache_seconds: Seconds = 5.0
    list_max_offset_rows: AtLeastOne = 10000
    list_max_filters: AtLeastOne = 10
    list_max_pattern_length: AtLeastOne = 100
    list_expensive_timeout_ms: Milliseconds = 2000

    # expired sessions and sign-in tokens (issue 15): the sweeps pause between batches
    sweep_pause_ms: Count = 20

    # observability
    metrics_refresh_seconds: Seconds = 15.0  # background gauges (Stripe backlog, replica lag, migrations)

    # hostile and careless callers (issue 14): password work, per-caller budgets, input limits
    bcrypt_queue_size: Count = 0  # password jobs waiting beyond the running ones; 0: as many as threads
    bcrypt_caller_share: Annotated[float, Meta(gt=0, le=1)] = 0.5  # of all password places, the most one token may hold
    caller_limits: str = ""  # name:concurrency:expensive,... per service token name
    caller_concurrency: AtLeastOne = 256  # requests in flight per token (default budget)
    caller_expensive: AtLeastOne = 2  # expensive list queries in flight per token (default budget)
    caller_expensive_total: Count = 0  # expensive list queries in flight, all tokens; 0: half the pool
    caller_retry_after_seconds: Count = 1
    max_json_depth: AtLeastOne = 32  # nesting of objects and arrays in a request body

    # stripe (issue 12)
    stripe_api_key: str = ""  # set: each event triggers a read of the Subscription from Stripe's API
    stripe_api_base: str = ""  # Stripe's API address ("" = https://api.stripe.com); tests use a fake
    stripe_api_timeout: Seconds = 10.0
    stripe_event_retention_days: Count = 30  # 0 keeps every event

    # beyond one machine (issue 17)
    redis_cluster: bool = False  # REDIS_URL is a Redis Cluster node (same as a redis+cluster:// URL)
    redis_failover_wait: Seconds = 10.0  # Sentinel/Cluster: seconds a write waits for its invalidation

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def replace(self, **changes) -> Settings:
        return msgspec.structs.replace(self, **changes)


def load_settings(env: dict[str, str] | None = None, **overrides) -> Settings:
    """Defaults file, then environment variables (upper-case field names), then explicit overrides."""
    env = os.environ if env is None else env
    values: dict = {}
    sources: dict[str, str] = {}
    defaults_file = CONFIG_DIR / "defaults.toml"
    if defaults_file.exists():
        for name, value in tomllib.loads(defaults_file.read_text()).items():
            values[name], sources[name] = value, f"{name} in {defaults_file}"
    for field in msgspec.structs.fields(Settings):
        raw = env.get(field.name.upper())
        if raw is not None and raw != "":
            values[field.name], sources[field.name] = raw, field.name.upper()
    values.update(overrides)
    sources.update({name: name for name in overrides})
    settings = convert(Settings, values, sources)
    if settings.pool_min_size > settings.pool_max_size:
        raise SettingsError(f"POOL_MIN_SIZE ({settings.pool_min_size}) must not exceed POOL_MAX_SIZE "
                            f"({settings.pool_max_size})")
    return settings


__all__ = ["ENVIRONMENTS", "Settings", "SettingsError", "load_settings"]
