import asyncio

import pytest

from service import migrate
from tests.databases import create_database, drop_database


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
