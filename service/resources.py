"""Open and close what a running service needs (pools, cache, cipher), for the app and the commands."""

from __future__ import annotations

from contextlib import asynccontextmanager

from .cache import create_cache
from .crypto import FieldCipher
from .db import Database, ReplicaDatabase
from .deps import Deps
from .embedded import resolve_database_url
from .passwords import PasswordPool
from .settings import Settings


@asynccontextmanager
async def open_deps(settings: Settings):
    db = await Database.connect(resolve_database_url(settings), settings)
    read_db = db
    cache = None
    passwords = PasswordPool.from_settings(settings)
    try:
        if settings.database_read_url:
            # min_size=0: the service starts (and reads from the primary) even when the replica is down.
            replica = await Database.connect(settings.database_read_url, settings, min_size=0)
            read_db = ReplicaDatabase(replica, db)
        cache = create_cache(settings, settings.cache_prefix)
        cache.enabled = settings.cache_enabled
        cache.start()
        yield Deps(settings=settings, db=db, read_db=read_db, cache=cache,
                   cipher=FieldCipher(settings.field_encryption_key),
                   passwords=passwords)
    finally:
        passwords.close()
        if cache is not None:
            await cache.close()
        if read_db is not db:
            await read_db.close()
        await db.close()
