"""Accounts, sessions and verification tokens (API.md), field encryption, the Auth.js adapter lifecycle."""

import asyncio
import base64
import os
import uuid

import pytest

from service.app import create_app
from service.deps import DEPS
from tests.conftest import (
    READ,
    WRITE,
    error_fields,
    make_settings,
    problem,
    unique_email,
)

MISSING_USER = "cnotauserid000000000000000"
FUTURE = "2099-01-01T00:00:00.000Z"


async def new_user(client, **fields):
    r = await client.post("/v1/users", json={"email": unique_email(), **fields}, headers=WRITE)
    assert r.status == 201, await r.text()
    return await r.json()


def account_body(user_id, **fields):
    return {"userId": user_id, "type": "oauth", "provider": "google", "providerAccountId": uuid.uuid4().hex,
            **fields}


def key_spec(kid):
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


# ---- accounts ------------------------------------------------------------------------------------

async def test_link_get_list_unlink_account(client, deps):
    user = await new_user(client)
    body = account_body(user["id"], refresh_token="rt", access_token="at", expires_at=1767225600,
                        token_type="bearer", scope="openid email", id_token="idt", session_state="st")
    r = await client.post("/v1/accounts", json=body, headers=WRITE)
    assert r.status == 201, await r.text()
    account = await r.json()
    assert account.pop("id")
    assert account == body
    # Without FIELD_ENCRYPTION_KEY the tokens are stored as given.
    raw = await deps.db.fetchrow('SELECT access_token, refresh_token, id_token FROM accounts '
                                 'WHERE provider = $1 AND "providerAccountId" = $2',
                                 "google", body["providerAccountId"])
    assert dict(raw) == {"access_token": "at", "refresh_token": "rt", "id_token": "idt"}

    path = f"/v1/accounts/google/{body['providerAccountId']}"
    r = await client.get(path, headers=WRITE)  # OAuth tokens are shown to write-scope callers only
    assert r.status == 200
    got = await r.json()
    assert {k: v for k, v in got.items() if k != "id"} == body

    r = await client.get(f"/v1/users/{user['id']}/accounts", headers=WRITE)
    assert r.status == 200
    page = await r.json()
    assert [a["providerAccountId"] for a in page["data"]] == [body["providerAccountId"]]
    assert page["data"][0]["access_token"] == "at"

    r = await client.delete(path, headers=WRITE)
    assert r.status == 204
    assert (await problem(await client.get(path, headers=READ), 404))["code"] == "not_found"
    assert (await problem(await client.delete(path, headers=WRITE), 404))["code"] == "not_found"
    page = await (await client.get(f"/v1/users/{user['id']}/accounts", headers=READ)).json()
    assert page["data"] == []
    # The user stays.
    assert (await client.get(f"/v1/users/{user['id']}", headers=READ)).status == 200


async def test_minimal_account_has_null_tokens(client):
    user = await new_user(client)
    body = account_body(user["id"])
    account = await (await client.post("/v1/accounts", json=body, headers=WRITE)).json()
    for name in ("refresh_token", "access_token", "expires_at", "token_type", "scope", "id_token",
                 "session_state"):
        assert account[name] is None


async def test_account_pair_taken_is_409(client, deps):
    user = await new_user(client)
    other = await new_user(client)
    body = account_body(user["id"])
    assert (await client.post("/v1/accounts", json=body, headers=WRITE)).status == 201
    r = await client.post("/v1/accounts", json={**body, "userId": other["id"]}, headers=WRITE)
    answer = await problem(r, 409)
    assert answer["code"] == "conflict"
    assert error_fields(answer) == {"provider", "providerAccountId"}
    assert await deps.db.fetchval('SELECT count(*) FROM accounts WHERE "userId" = $1', other["id"]) == 0
    # Same providerAccountId at another provider is fine.
    r = await client.post("/v1/accounts", json={**body, "provider": "github"}, headers=WRITE)
    assert r.status == 201


async def test_account_bad_input(client, deps):
    user = await new_user(client)
    r = await client.post("/v1/accounts", json=account_body(MISSING_USER), headers=WRITE)
    answer = await problem(r, 422)
    assert error_fields(answer) == {"userId"}
    for body, field in (
        ({k: v for k, v in account_body(user["id"]).items() if k != "provider"}, "provider"),
        (account_body(user["id"], expires_at="soon"), "expires_at"),
        (account_body(user["id"], expires_at=2**40), "expires_at"),
        (account_body(user["id"], id=1), "id"),
        (account_body(user["id"], access_token=7), "access_token"),
    ):
        r = await client.post("/v1/accounts", json=body, headers=WRITE)
        assert field in error_fields(await problem(r, 422)), body
    assert await deps.db.fetchval('SELECT count(*) FROM accounts WHERE "userId" = $1', user["id"]) == 0
    r = await client.get(f"/v1/users/{MISSING_USER}/accounts", headers=READ)
    assert r.status == 404


# ---- sessions ------------------------------------------------------------------------------------

async def test_session_routes(client):
    user = await new_user(client, name="Sess")
    token = "st-" + uuid.uuid4().hex
    r = await client.post("/v1/sessions", json={"sessionToken": token, "userId": user["id"],
                                                "expires": "2099-01-01T02:00:00+02:00"}, headers=WRITE)
    assert r.status == 201, await r.text()
    session = await r.json()
    assert set(session) == {"id", "sessionToken", "userId", "expires"}
    assert session["sessionToken"] == token and session["userId"] == user["id"]
    assert session["expires"] == FUTURE

    r = await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)
    assert r.status == 200
    assert await r.json() == {"session": session, "user": user}

    r = await client.post("/v1/sessions/update", json={"sessionToken": token, "expires": "2098-05-06T07:08:09.123Z"},
                          headers=WRITE)
    assert r.status == 200
    updated = await r.json()
    assert updated == {**session, "expires": "2098-05-06T07:08:09.123Z"}
    r = await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)
    assert (await r.json())["session"] == updated

    r = await client.post("/v1/sessions/delete", json={"sessionToken": token}, headers=WRITE)
    assert r.status == 200
    assert await r.json() == updated
    for path in ("/v1/sessions/lookup", "/v1/sessions/delete"):
        r = await client.post(path, json={"sessionToken": token}, headers=WRITE)
        assert (await problem(r, 404))["code"] == "not_found"
    r = await client.post("/v1/sessions/update", json={"sessionToken": token, "expires": FUTURE}, headers=WRITE)
    assert (await problem(r, 404))["code"] == "not_found"


async def test_lookup_sees_a_user_change(client):
    user = await new_user(client, name="Old")
    token = uuid.uuid4().hex
    await client.post("/v1/sessions", json={"sessionToken": token, "userId": user["id"], "expires": FUTURE},
                      headers=WRITE)
    assert (await (await client.post("/v1/sessions/lookup", json={"sessionToken": token},
                                     headers=READ)).json())["user"]["name"] == "Old"
    await client.patch(f"/v1/users/{user['id']}", json={"name": "New"}, headers=WRITE)
    found = await (await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)).json()
    assert found["user"]["name"] == "New"


async def test_session_failures(client, deps):
    user = await new_user(client)
    token = uuid.uuid4().hex
    body = {"sessionToken": token, "userId": user["id"], "expires": FUTURE}
    assert (await client.post("/v1/sessions", json=body, headers=WRITE)).status == 201
    answer = await problem(await client.post("/v1/sessions", json=body, headers=WRITE), 409)
    assert error_fields(answer) == {"sessionToken"}

    fresh = uuid.uuid4().hex
    r = await client.post("/v1/sessions", json={**body, "sessionToken": fresh, "userId": MISSING_USER},
                          headers=WRITE)
    assert error_fields(await problem(r, 422)) == {"userId"}
    for bad, field in (
        ({**body, "sessionToken": fresh, "expires": "tomorrow"}, "expires"),
        ({**body, "sessionToken": fresh, "expires": "2099-01-01T00:00:00"}, "expires"),
        ({**body, "sessionToken": ""}, "sessionToken"),
        ({"sessionToken": fresh, "expires": FUTURE}, "userId"),
        ({**body, "sessionToken": fresh, "extra": True}, "extra"),
    ):
        r = await client.post("/v1/sessions", json=bad, headers=WRITE)
        assert field in error_fields(await problem(r, 422)), bad
    assert await deps.db.fetchval('SELECT count(*) FROM sessions WHERE "sessionToken" = $1', fresh) == 0
    r = await client.post("/v1/sessions/update", json={"sessionToken": token, "expires": "never"}, headers=WRITE)
    assert error_fields(await problem(r, 422)) == {"expires"}
    r = await client.post("/v1/sessions/lookup", json={"token": token}, headers=READ)
    assert (await problem(r, 422))["code"] == "validation_error"


# ---- verification tokens ---------------------------------------------------------------------------

async def test_verification_token_create_and_use_once(client, deps):
    identifier, token = unique_email(), "vt-" + uuid.uuid4().hex
    body = {"identifier": identifier, "token": token, "expires": "2099-01-01T01:00:00+01:00"}
    r = await client.post("/v1/verification-tokens", json=body, headers=WRITE)
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created == {"identifier": identifier, "token": token, "expires": FUTURE}
    assert (await problem(await client.post("/v1/verification-tokens", json=body, headers=WRITE), 409))["code"] \
        == "conflict"

    r = await client.post("/v1/verification-tokens/use", json={"identifier": "other@x.io", "token": token},
                          headers=WRITE)
    assert r.status == 404
    r = await client.post("/v1/verification-tokens/use", json={"identifier": identifier, "token": token},
                          headers=WRITE)
    assert r.status == 200
    assert await r.json() == created
    r = await client.post("/v1/verification-tokens/use", json={"identifier": identifier, "token": token},
                          headers=WRITE)
    assert (await problem(r, 404))["code"] == "not_found"
    assert await deps.db.fetchval("SELECT count(*) FROM verification_tokens WHERE token = $1", token) == 0


async def test_verification_token_failures(client):
    token = uuid.uuid4().hex
    for body, field in (
        ({"identifier": "a@b.c", "token": token}, "expires"),
        ({"identifier": "a@b.c", "token": token, "expires": "soon"}, "expires"),
        ({"identifier": "a@b.c", "token": "", "expires": FUTURE}, "token"),
        ({"token": token, "expires": FUTURE}, "identifier"),
    ):
        r = await client.post("/v1/verification-tokens", json=body, headers=WRITE)
        assert field in error_fields(await problem(r, 422)), body
    r = await client.post("/v1/verification-tokens/use", json={"identifier": "a@b.c"}, headers=WRITE)
    assert error_fields(await problem(r, 422)) == {"token"}
    r = await client.post("/v1/verification-tokens/use", json={"identifier": "a@b.c", "token": token}, headers=READ)
    assert r.status == 403


async def test_hundred_concurrent_uses_of_one_verification_token(client):
    identifier, token = unique_email(), uuid.uuid4().hex
    r = await client.post("/v1/verification-tokens", json={"identifier": identifier, "token": token,
                                                           "expires": FUTURE}, headers=WRITE)
    assert r.status == 201
    answers = await asyncio.gather(*(
        client.post("/v1/verification-tokens/use", json={"identifier": identifier, "token": token}, headers=WRITE)
        for _ in range(100)))
    statuses = [r.status for r in answers]
    assert statuses.count(200) == 1, sorted(statuses)
    assert statuses.count(404) == 99, sorted(statuses)


# ---- field encryption ------------------------------------------------------------------------------

@pytest.fixture
async def encrypted_client(aiohttp_client, migrated_database_url, redis_url):
    async def make(key):
        settings = make_settings(migrated_database_url, redis_url, field_encryption_key=key)
        return await aiohttp_client(create_app(settings))

    return make


async def raw_tokens(client, provider, pid):
    row = await client.server.app[DEPS].db.fetchrow(
        'SELECT access_token, refresh_token, id_token, token_type FROM accounts '
        'WHERE provider = $1 AND "providerAccountId" = $2', provider, pid)
    return dict(row)


async def test_tokens_are_encrypted_at_rest_and_returned_decrypted(encrypted_client):
    k1 = key_spec("k1")
    client = await encrypted_client(k1)
    user = await new_user(client)
    body = account_body(user["id"], access_token="access-secret", refresh_token="refresh-secret",
                        id_token="id-secret", token_type="bearer")
    r = await client.post("/v1/accounts", json=body, headers=WRITE)
    assert r.status == 201
    account = await r.json()
    assert (account["access_token"], account["refresh_token"], account["id_token"]) == \
        ("access-secret", "refresh-secret", "id-secret")

    raw = await raw_tokens(client, "google", body["providerAccountId"])
    for name in ("access_token", "refresh_token", "id_token"):
        assert raw[name].startswith("enc:v2:k1:"), raw
        assert "secret" not in raw[name]
    assert raw["token_type"] == "bearer"  # not a secret: stored as given
    # Two encryptions of one value differ (a fresh nonce each time).
    assert len({raw["access_token"], raw["refresh_token"], raw["id_token"]}) == 3

    got = await (await client.get(f"/v1/accounts/google/{body['providerAccountId']}", headers=WRITE)).json()  # tokens: write scope only
    assert got == account
    full = await (await client.get(f"/v1/users/{user['id']}?include=accounts", headers=WRITE)).json()  # tokens: write scope only
    assert full["accounts"] == [account]
    page = await (await client.get(f"/v1/users/{user['id']}/accounts", headers=WRITE)).json()  # tokens: write scope only
    assert page["data"] == [account]


async def test_null_tokens_stay_null_when_encrypting(encrypted_client):
    client = await encrypted_client(key_spec("k1"))
    user = await new_user(client)
    body = account_body(user["id"])
    account = await (await client.post("/v1/accounts", json=body, headers=WRITE)).json()
    assert account["access_token"] is None
    raw = await raw_tokens(client, "google", body["providerAccountId"])
    assert raw["access_token"] is None and raw["refresh_token"] is None and raw["id_token"] is None


async def test_key_rotation_still_decrypts_old_values(encrypted_client):
    k1, k2 = key_spec("k1"), key_spec("k2")
    old_client = await encrypted_client(k1)
    user = await new_user(old_client)
    old = account_body(user["id"], access_token="old-access", refresh_token="old-refresh")
    assert (await old_client.post("/v1/accounts", json=old, headers=WRITE)).status == 201
    assert (await raw_tokens(old_client, "google", old["providerAccountId"]))["access_token"].startswith("enc:v2:k1:")

    client = await encrypted_client(f"{k2},{k1}")
    got = await (await client.get(f"/v1/accounts/google/{old['providerAccountId']}", headers=WRITE)).json()  # tokens: write scope only
    assert got["access_token"] == "old-access" and got["refresh_token"] == "old-refresh"
    new = account_body(user["id"], access_token="new-access")
    created = await (await client.post("/v1/accounts", json=new, headers=WRITE)).json()
    assert created["access_token"] == "new-access"
    assert (await raw_tokens(client, "google", new["providerAccountId"]))["access_token"].startswith("enc:v2:k2:")
    by_user = await (await client.get(f"/v1/users/{user['id']}?include=accounts", headers=WRITE)).json()  # tokens: write scope only
    assert {a["access_token"] for a in by_user["accounts"]} == {"old-access", "new-access"}


async def test_plain_values_from_before_encryption_are_returned_as_they_are(client, encrypted_client):
    user = await new_user(client)
    body = account_body(user["id"], access_token="plain-access")
    assert (await client.post("/v1/accounts", json=body, headers=WRITE)).status == 201
    enc = await encrypted_client(key_spec("k1"))
    got = await (await enc.get(f"/v1/accounts/google/{body['providerAccountId']}", headers=WRITE)).json()  # tokens: write scope only
    assert got["access_token"] == "plain-access"


# ---- the Auth.js adapter lifecycle ---------------------------------------------------------------

async def test_authjs_adapter_lifecycle(client, deps):
    # createUser
    email = unique_email("authjs")
    r = await client.post("/v1/users", json={"email": email.upper(), "name": "Ada", "image": "https://i/a.png",
                                             "emailVerified": None}, headers=WRITE)
    assert r.status == 201
    user = await r.json()
    uid = user["id"]
    # getUserByEmail
    assert await (await client.get(f"/v1/users/by-email/{email}", headers=WRITE)).json()  # tokens: write scope only == user
    # linkAccount
    pid = uuid.uuid4().hex
    account = {"userId": uid, "type": "oauth", "provider": "github", "providerAccountId": pid,
               "access_token": "gho_x", "token_type": "bearer", "scope": "read:user"}
    r = await client.post("/v1/accounts", json=account, headers=WRITE)
    assert r.status == 201
    # getUserByAccount
    r = await client.get(f"/v1/users/by-account/github/{pid}", headers=READ)
    assert r.status == 200 and await r.json() == user
    # createSession
    token = "sess-" + uuid.uuid4().hex
    r = await client.post("/v1/sessions", json={"sessionToken": token, "userId": uid, "expires": FUTURE},
                          headers=WRITE)
    assert r.status == 201
    session = await r.json()
    # getSessionAndUser
    r = await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)
    assert await r.json() == {"session": session, "user": user}
    # updateSession
    r = await client.post("/v1/sessions/update", json={"sessionToken": token, "expires": "2099-02-01T00:00:00Z"},
                          headers=WRITE)
    assert (await r.json())["expires"] == "2099-02-01T00:00:00.000Z"
    # updateUser
    r = await client.patch(f"/v1/users/{uid}", json={"emailVerified": "2026-01-01T00:00:00Z"}, headers=WRITE)
    assert (await r.json())["emailVerified"] == "2026-01-01T00:00:00.000Z"
    r = await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)
    found = await r.json()
    assert found["session"]["expires"] == "2099-02-01T00:00:00.000Z"
    assert found["user"]["emailVerified"] == "2026-01-01T00:00:00.000Z"
    # deleteSession
    r = await client.post("/v1/sessions/delete", json={"sessionToken": token}, headers=WRITE)
    assert r.status == 200 and (await r.json())["sessionToken"] == token
    assert (await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)).status == 404
    # createVerificationToken / useVerificationToken (twice)
    vt = {"identifier": email, "token": "vt-" + uuid.uuid4().hex, "expires": FUTURE}
    assert (await client.post("/v1/verification-tokens", json=vt, headers=WRITE)).status == 201
    use = {"identifier": email, "token": vt["token"]}
    r = await client.post("/v1/verification-tokens/use", json=use, headers=WRITE)
    assert r.status == 200 and await r.json() == vt | {"expires": FUTURE}
    assert (await client.post("/v1/verification-tokens/use", json=use, headers=WRITE)).status == 404
    # unlinkAccount
    assert (await client.delete(f"/v1/accounts/github/{pid}", headers=WRITE)).status == 204
    assert (await client.get(f"/v1/users/by-account/github/{pid}", headers=READ)).status == 404
    # a second session, to see deleteUser take it
    token2 = uuid.uuid4().hex
    await client.post("/v1/sessions", json={"sessionToken": token2, "userId": uid, "expires": FUTURE}, headers=WRITE)
    await client.post("/v1/accounts", json={**account, "provider": "google"}, headers=WRITE)
    # deleteUser
    assert (await client.delete(f"/v1/users/{uid}", headers=WRITE)).status == 204
    # everything gone
    assert (await client.get(f"/v1/users/{uid}", headers=READ)).status == 404
    assert (await client.get(f"/v1/users/by-email/{email}", headers=READ)).status == 404
    assert (await client.get(f"/v1/users/by-account/google/{pid}", headers=READ)).status == 404
    assert (await client.post("/v1/sessions/lookup", json={"sessionToken": token2}, headers=READ)).status == 404
    assert await deps.db.fetchval("SELECT count(*) FROM users WHERE id = $1", uid) == 0
    assert await deps.db.fetchval('SELECT count(*) FROM accounts WHERE "userId" = $1', uid) == 0
    assert await deps.db.fetchval('SELECT count(*) FROM sessions WHERE "userId" = $1', uid) == 0
    assert await deps.db.fetchval("SELECT count(*) FROM verification_tokens WHERE identifier = $1", email) == 0
