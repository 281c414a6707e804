"""Input anyone can send never gets a 500: deep JSON, bodies cut off half-way, stored tokens that do
not decrypt, values shaped like ciphertext; and OAuth tokens only reach write-scope callers."""

import asyncio
import logging

import pytest

from service.app import create_app
from service.deps import DEPS
from tests.conftest import READ, WRITE, make_settings
from tests.test_identity import account_body, key_spec, new_user

FUTURE_TTL = 3600


async def test_chart_data_nested_a_thousand_deep_is_a_422_naming_the_field(client, deps):
    deep = b'{"x": [' * 1000 + b'{"a": 1}' + b"]}" * 1000  # written out: json.dumps itself would recurse
    r = await client.post("/v1/charts", headers={**WRITE, "Content-Type": "application/json"},
                          data=b'{"chartType": "TROPICAL", "ttlSeconds": 3600, "chartData": ' + deep + b"}")
    assert r.status == 422, await r.text()
    body = await r.json()
    assert body["errors"][0]["field"].startswith("chartData")
    assert "deeper than 32" in body["errors"][0]["message"]
    fifty = b'{"planets": ' + b"[" * 50 + b"1" + b"]" * 50 + b"}"  # msgspec decodes it; our limit refuses
    r = await client.post("/v1/charts", headers={**WRITE, "Content-Type": "application/json"},
                          data=b'{"chartType": "TROPICAL", "ttlSeconds": 3600, "chartData": ' + fifty + b"}")
    assert r.status == 422 and (await r.json())["errors"][0]["field"] == "chartData.planets"
    r = await client.post("/v1/users", headers=WRITE,
                          json={"email": "deep@example.com", "name": "[" * 5000 + "]" * 5000})  # in a string
    assert r.status in (201, 422)  # brackets inside a string are text, not nesting
    shallow = {"x": [[{"y": list(range(10))}]]}
    r = await client.post("/v1/charts", headers=WRITE,
                          json={"chartType": "TROPICAL", "chartData": shallow, "ttlSeconds": FUTURE_TTL})
    assert r.status == 201, await r.text()
    assert (await r.json())["chartData"] == shallow


async def send_and_abort(port: int, head: str, partial: bytes) -> None:
    """Announce a body, send part of it, then close the connection."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + partial)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("path,headers", [
    ("/v1/stripe/webhook", "Stripe-Signature: t=1,v1=00\r\n"),
    ("/v1/users", f"Authorization: {WRITE['Authorization']}\r\n"),
])
async def test_an_upload_cut_off_half_way_is_a_400_without_a_traceback(client, caplog, path, headers):
    caplog.set_level(logging.DEBUG)
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: 5000\r\n\r\n")
    await send_and_abort(client.server.port, head, b'{"id": "evt_' + b"1" * 100)
    for _ in range(100):
        if any(getattr(r, "route", None) == path for r in caplog.records):
            break
        await asyncio.sleep(0.02)
    access = [r for r in caplog.records if getattr(r, "route", None) == path]
    assert [r.status for r in access] == [400]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text


@pytest.fixture
async def keyed_app(aiohttp_client, migrated_database_url, redis_url):
    async def start(key):
        app = create_app(make_settings(migrated_database_url, redis_url, field_encryption_key=key))
        client = await aiohttp_client(app)
        return client, client.server.app[DEPS]

    return start


async def test_a_token_that_does_not_decrypt_is_null_and_named_never_a_500(keyed_app):
    old, new = key_spec("old"), key_spec("new")
    writer, deps = await keyed_app(old)
    user = await new_user(writer)
    bodies = [account_body(user["id"], access_token=f"at-{i}", refresh_token=f"rt-{i}", id_token=f"it-{i}")
              for i in range(4)]
    ids = []
    for body in bodies:
        r = await writer.post("/v1/accounts", headers=WRITE, json=body)
        ids.append((await r.json())["id"])
    # Row 1: corrupt ciphertext; row 2: a value copied from row 0 (other row, same key); row 3 is fine.
    await deps.db.execute("UPDATE accounts SET refresh_token = left(refresh_token, -4) || 'AAAA' WHERE id = $1",
                          ids[1])
    await deps.db.execute("UPDATE accounts SET id_token = (SELECT id_token FROM accounts WHERE id = $1) "
                          "WHERE id = $2", ids[0], ids[2])
    # The service restarted with only the new key: row 0's key id is unknown, and "old" under a wrong key.
    reader, _ = await keyed_app(new)
    wrong, _ = await keyed_app(f"old:{new.split(':')[1]}")
    for client, expect_all_unknown in ((reader, True), (wrong, False)):
        r = await client.get(f"/v1/accounts/google/{bodies[3]['providerAccountId']}", headers=WRITE)
        assert r.status == 200, await r.text()
        account = await r.json()
        assert account["access_token"] is None and set(account["tokenErrors"]) == {
            "access_token", "refresh_token", "id_token"}
        reason = account["tokenErrors"]["access_token"]
        assert ("no key 'old'" in reason) if expect_all_unknown else ("does not decrypt" in reason)
        r = await client.get(f"/v1/users/{user['id']}/accounts", headers=WRITE)
        assert r.status == 200 and len((await r.json())["data"]) == 4
        r = await client.get(f"/v1/users/{user['id']}", params={"include": "accounts"}, headers=WRITE)
        assert r.status == 200 and len((await r.json())["accounts"]) == 4
    # With the right key: only the damaged fields are null, the rest of each account is intact.
    again, _ = await keyed_app(old)
    page = (await (await again.get(f"/v1/users/{user['id']}/accounts", headers=WRITE)).json())["data"]
    by_id = {a["id"]: a for a in page}
    assert by_id[ids[1]].get("tokenErrors") == {"refresh_token": "stored value does not decrypt with key 'old'"}
    assert by_id[ids[1]]["access_token"] == "at-1"
    assert set(by_id[ids[2]]["tokenErrors"]) == {"id_token"}  # copied from another row: refused
    assert by_id[ids[2]]["refresh_token"] == "rt-2"
    assert "tokenErrors" not in by_id[ids[3]] and by_id[ids[3]]["id_token"] == "it-3"


async def test_a_value_shaped_like_ciphertext_is_refused_when_no_key_is_configured(client, deps):
    user = await new_user(client)
    body = account_body(user["id"], access_token="enc:v1:k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    r = await client.post("/v1/accounts", headers=WRITE, json=body)
    assert r.status == 422 and (await r.json())["errors"][0]["field"] == "access_token"
    assert await deps.db.fetchval('SELECT count(*) FROM accounts WHERE "userId" = $1', user["id"]) == 0


async def test_oauth_tokens_reach_write_scope_callers_only(client):
    user = await new_user(client)
    body = account_body(user["id"], access_token="at", refresh_token="rt", id_token="it", scope="openid")
    assert (await client.post("/v1/accounts", headers=WRITE, json=body)).status == 201
    path = f"/v1/accounts/google/{body['providerAccountId']}"
    for url, params in ((path, {}), (f"/v1/users/{user['id']}/accounts", {}),
                        (f"/v1/users/{user['id']}", {"include": "accounts"})):
        seen = {}
        for name, headers in (("read", READ), ("write", WRITE)):
            answer = await (await client.get(url, params=params, headers=headers)).json()
            account = answer if "provider" in answer else (answer.get("data") or answer.get("accounts"))[0]
            seen[name] = account
        assert [seen["read"][k] for k in ("access_token", "refresh_token", "id_token")] == [None] * 3
        assert seen["read"]["scope"] == "openid"
        assert [seen["write"][k] for k in ("access_token", "refresh_token", "id_token")] == ["at", "rt", "it"]
