"""What handlers and data functions share: the pools, the cache, settings, the field cipher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from .cache import Cache
from .crypto import FieldCipher
from .db import Database
from .settings import Settings

if TYPE_CHECKING:  # passwords.py imports limits.py, which imports this module
    from .passwords import PasswordPool


@dataclass
class Deps:
    settings: Settings
    db: Database  # the primary: writes, and reads that must see the request's own write
    read_db: Database  # a replica when DATABASE_READ_URL is set, else the primary
    cache: Cache
    cipher: FieldCipher
    passwords: PasswordPool

    @property
    def fill_db(self) -> Database:
        """Where a read that fills the cache comes from: the primary while the cache is on. A replica
        behind the primary would put a row as it was before a write into the cache (just invalidated by
        that write) for the whole TTL; with the cache off, a replica read is only as stale as its lag."""
        return self.db if self.cache.enabled else self.read_db


DEPS = web.AppKey("deps", Deps)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", object)
OPENAPI = web.AppKey("openapi", bytes)
CALLER = web.RequestKey("caller", object)


def deps_of(request: web.Request) -> Deps:
    return request.app[DEPS]
