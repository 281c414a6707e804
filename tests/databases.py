"""Test databases: each is created with a unique name on the test server and dropped afterwards.

The server is DATABASE_URL's (any database on it serves as the admin connection), or, when
DATABASE_URL is unset, an embedded PostgreSQL from the pgserver wheel in a temporary folder.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def server_admin_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    global _embedded_url
    if _embedded_url is None:
        from service.embedded import import_pgserver

        pgserver = import_pgserver()
        folder = tempfile.mkdtemp(prefix="aw-test-pg-")
        _embedded_url = pgserver.get_server(folder, cleanup_mode="delete").get_uri("postgres")
    return _embedded_url


_embedded_url: str | None = None


def url_for_database(admin_url: str, database: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + database))


async def create_database(prefix: str = "aw_test") -> str:
    """Create a uniquely named, empty database; returns its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_admin_url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return url_for_database(server_admin_url(), name)


async def drop_database(url: str) -> None:
    """Drop a database this test run created (the name says so), closing its connections first."""
    name = urlsplit(url).path.lstrip("/")
    assert name.startswith("aw_test") or name.startswith("aw_"), f"refusing to drop {name!r}"
    admin = await asyncpg.connect(server_admin_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
