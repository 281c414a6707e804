"""Settings: one msgspec Struct, defaults from config/defaults.toml, overridden by the environment."""

from __future__ import annotations

import os
import tomllib

import msgspec

from . import CONFIG_DIR


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    database_url: str | None = None
    database_read_url: str | None = None
    redis_url: str | None = None
    environment: str = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = ".data"

    service_tokens: str = ""
    stripe_webhook_secret: str = ""
    stripe_tolerance_seconds: int = 300
    bcrypt_rounds: int = 12
    field_encryption_key: str = ""

    pool_min_size: int = 2
    pool_max_size: int = 10
    pool_acquire_timeout: float = 5.0
    statement_cache_size: int = 1024
    statement_timeout_ms: int = 15000
    connect_timeout: float = 5.0
    retry_after_seconds: int = 5

    max_body_bytes: int = 1048576
    body_read_timeout: float = 10.0
    log_level: str = "INFO"
    log_queries: bool = False

    cache_ttl_user: int = 300
    cache_ttl_subscription: int = 60
    cache_ttl_static: int = 3600
    cache_ttl_not_found: int = 5
    cache_max_entries: int = 10000
    redis_timeout: float = 0.25
    cache_prefix: str = "aw:"
    cache_near_ttl: float = 30.0
    cache_enabled: bool = True

    sweep_interval_seconds: float = 300
    bcrypt_threads: int = 0  # 0: one fewer than the cores, at least one
    sweep_batch_size: int = 5000

    migrate_lock_timeout: int = 600

    # beyond one machine
    redis_cluster: bool = False  # REDIS_URL is a Redis Cluster node (same as a redis+cluster:// URL)
    redis_failover_wait: float = 10.0  # Sentinel/Cluster: seconds a write waits for its invalidation

    @property
    def is_production(self) -> bool:
        return self.environment.lower() in ("production", "prod")

    def replace(self, **changes) -> "Settings":
        return msgspec.structs.replace(self, **changes)


class SettingsError(ValueError):
    """A setting has a value of the wrong type; the message names the variable."""


def load_settings(env: dict[str, str] | None = None, **overrides) -> Settings:
    """Defaults file, then environment variables (upper-case field names), then explicit overrides."""
    env = os.environ if env is None else env
    values: dict = {}
    defaults_file = CONFIG_DIR / "defaults.toml"
    if defaults_file.exists():
        values.update(tomllib.loads(defaults_file.read_text()))
    for field in msgspec.structs.fields(Settings):
        raw = env.get(field.name.upper())
        if raw is not None and raw != "":
            values[field.name] = raw
    values.update(overrides)
    try:
        # strict=False lets "12" become 12 and "1"/"true" become True, as env values are strings.
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc}") from None
