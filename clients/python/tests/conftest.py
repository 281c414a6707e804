"""The client's tests run against a real data service: AW_BASE_URL with a write token AW_TOKEN (and
AW_READ_TOKEN, AW_STRIPE_SECRET it was started with). The repository's tests/test_clients.py starts one
on a fresh database and sets these. Tests that need a service of their own (an outage) start it with
`python -m service serve` on AW_DATABASE_URL, a migrated database."""

from __future__ import annotations

import os
import uuid

import pytest
from astrowellness_data_client import DataClient


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through tests/test_clients.py, "
                    "or point them at a running data service")
    return value


@pytest.fixture
def base_url() -> str:
    return env("AW_BASE_URL")


@pytest.fixture
def token() -> str:
    return env("AW_TOKEN")


@pytest.fixture
async def client(base_url, token):
    async with DataClient(base_url, token) as client:
        yield client


@pytest.fixture
def marker() -> str:
    """A string unique to the test, to put in e-mails and find its own rows with a filter."""
    return uuid.uuid4().hex[:12]


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"
