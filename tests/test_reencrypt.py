"""Encryption you can rotate: values copied between rows do not decrypt, old (v1) values still read,
and `reencrypt` moves every row to the newest key in resumable batches, after which old keys can go."""

import base64
import os
import subprocess
import sys

import asyncpg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service import migrate
from service.app import create_app
from service.crypto import FieldCipher
from service.deps import DEPS
from service.reencrypt import reencrypt_accounts
from tests.conftest import WRITE, make_settings
from tests.test_deploy import ROOT
from tests.test_identity import account_body, new_user


@pytest.fixture
async def own_database(empty_database):
    """A database of this test alone: reencrypt walks the whole accounts table."""
    migrate.apply(empty_database)
    return empty_database


@pytest.fixture
async def keyed_app(aiohttp_client, own_database, redis_url):
    async def start(key):
        client = await aiohttp_client(create_app(make_settings(own_database, redis_url, field_encryption_key=key)))
        return client, client.server.app[DEPS]

    return start


class Interrupted(Exception):
    pass


def legacy_v1(key_b64: str, kid: str, plain: str) -> str:
    """A value as the service wrote it before associated data named the row (enc:v1, AD = key id)."""
    nonce = os.urandom(12)
    sealed = AESGCM(base64.b64decode(key_b64)).encrypt(nonce, plain.encode(), kid.encode())
    return f"enc:v1:{kid}:{base64.b64encode(nonce + sealed).decode()}"


def test_a_value_copied_to_another_row_or_column_does_not_decrypt():
    cipher = FieldCipher(f"k1:{base64.b64encode(os.urandom(32)).decode()}")
    sealed = cipher.encrypt("secret", "accounts", "access_token", "row-1")
    assert cipher.decrypt(sealed, "accounts", "access_token", "row-1") == "secret"
    for where in (("accounts", "access_token", "row-2"), ("accounts", "refresh_token", "row-1"),
                  ("sessions", "access_token", "row-1")):
        with pytest.raises(ValueError):
            cipher.decrypt(sealed, *where)


async def test_reencrypt_moves_every_row_to_the_newest_key_resumably(keyed_app, own_database):
    k1_b64 = base64.b64encode(os.urandom(32)).decode()
    k1, k2 = f"k1:{k1_b64}", f"k2:{base64.b64encode(os.urandom(32)).decode()}"
    client, deps = await keyed_app(k1)
    user = await new_user(client)
    expected = {}
    for i in range(5):  # v2 under k1
        body = account_body(user["id"], access_token=f"at-{i}", refresh_token=f"rt-{i}")
        account = await (await client.post("/v1/accounts", headers=WRITE, json=body)).json()
        expected[account["id"]] = (f"at-{i}", f"rt-{i}", None)
    legacy = await (await client.post("/v1/accounts", headers=WRITE, json=account_body(user["id"]))).json()
    await deps.db.execute("UPDATE accounts SET access_token = $2, id_token = 'plain-from-before' WHERE id = $1",
                          legacy["id"], legacy_v1(k1_b64, "k1", "legacy-at"))
    expected[legacy["id"]] = ("legacy-at", None, "plain-from-before")
    broken = await (await client.post("/v1/accounts", headers=WRITE,
                                      json=account_body(user["id"], access_token="x"))).json()
    await deps.db.execute("UPDATE accounts SET access_token = 'enc:v2:gone:AAAA' WHERE id = $1", broken["id"])

    # The old (v1) value still reads before any rotation.
    got = await (await client.get(f"/v1/accounts/google/{legacy['providerAccountId']}", headers=WRITE)).json()
    assert got["access_token"] == "legacy-at" and got["id_token"] == "plain-from-before"

    conn = await asyncpg.connect(own_database)
    try:
        lines = []
        rotated = FieldCipher(f"{k2},{k1}")

        def stop_after_one_batch(line):
            lines.append(line)
            raise Interrupted()

        with pytest.raises(Interrupted):  # the operator's session died after the first batch
            await reencrypt_accounts(conn, rotated, batch_size=2, progress=stop_after_one_batch)
        assert len(lines) == 1 and lines[0].startswith("accounts: 2 read, ")
        resumed = await reencrypt_accounts(conn, rotated, batch_size=2, after=lines[0].rsplit(" ", 1)[1],
                                           progress=lines.append)
        assert resumed.accounts == 5 and resumed.undecryptable == 1
        again = await reencrypt_accounts(conn, rotated, batch_size=2, progress=lines.append)
        assert again.accounts == 7 and again.rewritten == 0 and again.undecryptable == 1  # all done; one stays
        rows = await conn.fetch("SELECT id, access_token, refresh_token, id_token FROM accounts "
                                'WHERE "userId" = $1', user["id"])
    finally:
        await conn.close()
    new_only = FieldCipher(k2)
    for row in rows:
        if row["id"] == broken["id"]:
            assert row["access_token"] == "enc:v2:gone:AAAA"  # reported, never destroyed
            continue
        for field in ("access_token", "refresh_token", "id_token"):
            assert row[field] is None or row[field].startswith("enc:v2:k2:")
        plain = tuple(new_only.decrypt(row[f], "accounts", f, row["id"])
                      for f in ("access_token", "refresh_token", "id_token"))
        assert plain == expected[row["id"]]

    # The service with only the new key: the old key is gone and every token reads.
    client2, _ = await keyed_app(k2)
    page = (await (await client2.get(f"/v1/users/{user['id']}/accounts", headers=WRITE)).json())["data"]
    assert [a["id"] for a in page if "tokenErrors" in a] == [broken["id"]]


def test_reencrypt_command_needs_a_key(migrated_database_url):
    result = subprocess.run([sys.executable, "-m", "service", "reencrypt"], check=False, cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, "DATABASE_URL": migrated_database_url,
                                            "FIELD_ENCRYPTION_KEY": ""}, timeout=60)
    assert result.returncode == 1 and "FIELD_ENCRYPTION_KEY is not set" in result.stderr
