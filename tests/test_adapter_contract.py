"""What the Auth.js adapter and the Python client need of the service (issue 16, items 4 and 6):
WebAuthn authenticators, account token rotation, verification tokens by token alone, impossible tokens
answered 404, route_not_found, every invalid field reported in our words, HTTP manners."""

import asyncio
import base64
import os
import uuid
from urllib.parse import quote

from service.app import create_app
from tests.conftest import (
    READ,
    WRITE,
    WRITE_TOKEN,
    error_fields,
    make_settings,
    problem,
    unique_email,
)
from tests.test_identity import FUTURE, MISSING_USER, account_body, new_user, raw_tokens


def authenticator_body(user_id, **fields):
    """A passkey as Auth.js's WebAuthn provider stores it (base64url id and key)."""
    return {"credentialID": base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
            "userId": user_id, "providerAccountId": base64.urlsafe_b64encode(os.urandom(16)).decode(),
            "credentialPublicKey": base64.b64encode(os.urandom(77)).decode(), "counter": 0,
            "credentialDeviceType": "multiDevice", "credentialBackedUp": True, "transports": "internal,hybrid",
            **fields}


# ---- authenticators ---------------------------------------------------------------------------------

async def test_authenticator_create_get_list_counter(client):
    user = await new_user(client)
    body = authenticator_body(user["id"])
    r = await client.post("/v1/authenticators", json=body, headers=WRITE)
    assert r.status == 201, await r.text()
    assert await r.json() == body
    location = r.headers["Location"]
    assert location == f"/v1/authenticators/{quote(body['credentialID'], safe='')}"

    r = await client.get(location, headers=READ)
    assert r.status == 200 and await r.json() == body

    second = authenticator_body(user["id"], transports=None, credentialBackedUp=False,
                                credentialDeviceType="singleDevice", counter=7)
    assert (await client.post("/v1/authenticators", json=second, headers=WRITE)).status == 201
    other_user = await new_user(client)
    assert (await client.post("/v1/authenticators", json=authenticator_body(other_user["id"]),
                              headers=WRITE)).status == 201
    page = await (await client.get(f"/v1/users/{user['id']}/authenticators", headers=READ)).json()
    assert sorted(page["data"], key=lambda a: a["credentialID"]) == \
        sorted([body, second], key=lambda a: a["credentialID"])
    assert page["pagination"]["total"] == 2
    page = await (await client.get(f"/v1/users/{user['id']}/authenticators?credentialBackedUp=eq.false"
                                   "&select=credentialID,counter", headers=READ)).json()
    assert page["data"] == [{"credentialID": second["credentialID"], "counter": 7}]

    r = await client.patch(location, json={"counter": 42}, headers=WRITE)
    assert r.status == 200 and await r.json() == {**body, "counter": 42}
    assert (await (await client.get(location, headers=READ)).json())["counter"] == 42


async def test_authenticator_errors(client):
    user = await new_user(client)
    body = authenticator_body(user["id"])
    assert (await client.post("/v1/authenticators", json=body, headers=WRITE)).status == 201
    # The same credential id, for the same or another user: 409, nothing changed.
    other = await new_user(client)
    for owner in (user["id"], other["id"]):
        r = await client.post("/v1/authenticators", json={**body, "userId": owner, "counter": 5}, headers=WRITE)
        assert error_fields(await problem(r, 409)) == {"credentialID"}
    assert (await (await client.get(f"/v1/authenticators/{quote(body['credentialID'], safe='')}",
                                    headers=READ)).json()) == body

    r = await client.post("/v1/authenticators", json=authenticator_body(MISSING_USER), headers=WRITE)
    assert error_fields(await problem(r, 422)) == {"userId"}
    r = await client.get("/v1/authenticators/no-such-credential", headers=READ)
    assert (await problem(r, 404))["code"] == "not_found"
    r = await client.patch("/v1/authenticators/no-such-credential", json={"counter": 1}, headers=WRITE)
    await problem(r, 404)
    r = await client.get(f"/v1/users/{MISSING_USER}/authenticators", headers=READ)
    await problem(r, 404)
    for bad in ({"counter": -1}, {"counter": 2**31}, {"counter": "1"}, {}):
        r = await client.patch(f"/v1/authenticators/{quote(body['credentialID'], safe='')}", json=bad,
                               headers=WRITE)
        assert error_fields(await problem(r, 422)) == {"counter"}, bad
    r = await client.post("/v1/authenticators", json=authenticator_body(user["id"]), headers=READ)
    await problem(r, 403)


async def test_deleting_a_user_deletes_their_authenticators(client, deps):
    user = await new_user(client)
    body = authenticator_body(user["id"])
    assert (await client.post("/v1/authenticators", json=body, headers=WRITE)).status == 201
    assert (await client.delete(f"/v1/users/{user['id']}", headers=WRITE)).status == 204
    assert await deps.db.fetchval('SELECT count(*) FROM authenticators WHERE "credentialID" = $1',
                                  body["credentialID"]) == 0


async def test_credential_ids_with_reserved_characters_round_trip(client):
    user = await new_user(client)
    body = authenticator_body(user["id"], credentialID="a/b?c#d e%f")
    r = await client.post("/v1/authenticators", json=body, headers=WRITE)
    assert r.status == 201
    assert (await (await client.get(r.headers["Location"], headers=READ)).json()) == body


# ---- account token rotation -------------------------------------------------------------------------

async def test_account_tokens_rotate_and_fields_left_out_are_kept(client):
    user = await new_user(client)
    body = account_body(user["id"], access_token="at1", refresh_token="rt1", expires_at=1767225600,
                        token_type="bearer", scope="openid", id_token="idt", session_state="s1")
    account = await (await client.post("/v1/accounts", json=body, headers=WRITE)).json()
    path = f"/v1/accounts/google/{body['providerAccountId']}"
    rotated = {"access_token": "at2", "refresh_token": "rt2", "expires_at": 1767229200}
    r = await client.patch(path, json=rotated, headers=WRITE)
    assert r.status == 200, await r.text()
    assert await r.json() == {**account, **rotated}
    r = await client.patch(path, json={"id_token": None, "scope": "openid email"}, headers=WRITE)
    assert await r.json() == {**account, **rotated, "id_token": None, "scope": "openid email"}
    assert await (await client.get(path, headers=WRITE)).json() == await r.json()

    r = await client.patch("/v1/accounts/google/nobody", json=rotated, headers=WRITE)
    await problem(r, 404)
    # Not a token: the owner and the provider pair cannot be changed here; nothing changes.
    r = await client.patch(path, json={"userId": "x", "access_token": 5}, headers=WRITE)
    assert error_fields(await problem(r, 422)) == {"userId", "access_token"}
    assert (await (await client.get(path, headers=WRITE)).json())["access_token"] == "at2"


async def test_rotated_tokens_are_encrypted_at_rest(aiohttp_client, migrated_database_url, redis_url):
    key = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    client = await aiohttp_client(create_app(make_settings(migrated_database_url, redis_url,
                                                           field_encryption_key=key)))
    user = await new_user(client)
    body = account_body(user["id"], access_token="old-secret", id_token="id-secret")
    assert (await client.post("/v1/accounts", json=body, headers=WRITE)).status == 201
    r = await client.patch(f"/v1/accounts/google/{body['providerAccountId']}",
                           json={"access_token": "new-secret", "refresh_token": "refresh-secret"}, headers=WRITE)
    got = await r.json()
    assert (got["access_token"], got["refresh_token"], got["id_token"]) == \
        ("new-secret", "refresh-secret", "id-secret")
    raw = await raw_tokens(client, "google", body["providerAccountId"])
    for name in ("access_token", "refresh_token", "id_token"):
        assert raw[name].startswith("enc:v2:k1:") and "secret" not in raw[name], raw


# ---- verification tokens and impossible tokens ------------------------------------------------------

async def test_verification_token_used_by_token_alone_or_with_its_identifier(client):
    for use in ({}, {"identifier": None}, {"identifier": "same"}):
        identifier = unique_email() if use.get("identifier") is None else "same"
        token = uuid.uuid4().hex
        created = {"identifier": identifier, "token": token, "expires": FUTURE}
        assert (await client.post("/v1/verification-tokens", json=created, headers=WRITE)).status == 201
        # A wrong identifier: not found, and the token is still there for the right caller.
        r = await client.post("/v1/verification-tokens/use", json={"identifier": "other@x.y", "token": token},
                              headers=WRITE)
        await problem(r, 404)
        r = await client.post("/v1/verification-tokens/use", json={"token": token, **use}, headers=WRITE)
        assert r.status == 200, await r.text()
        assert await r.json() == created
        r = await client.post("/v1/verification-tokens/use", json={"token": token}, headers=WRITE)
        await problem(r, 404)


async def test_tokens_that_cannot_exist_are_not_found_not_invalid(client):
    user = await new_user(client)
    impossible = ["x" * 513, "x" * 100_000, "with space", "naïve", "", "tab\there"]
    for token in impossible:
        for path, body in (("/v1/sessions/lookup", {"sessionToken": token}),
                           ("/v1/sessions/update", {"sessionToken": token, "expires": FUTURE}),
                           ("/v1/sessions/delete", {"sessionToken": token}),
                           ("/v1/verification-tokens/use", {"token": token}),
                           ("/v1/verification-tokens/use", {"token": token, "identifier": "a@b.c"})):
            body = await problem(await client.post(path, json=body, headers=WRITE), 404)
            assert body["code"] == "not_found", (path, token[:20])
    # Creating one is refused (so a lookup's 404 is the truth), naming the field.
    for token in impossible:
        r = await client.post("/v1/sessions", json={"sessionToken": token, "userId": user["id"], "expires": FUTURE},
                              headers=WRITE)
        assert error_fields(await problem(r, 422)) == {"sessionToken"}, token[:20]
    # A body that is not a token at all is still a malformed request.
    r = await client.post("/v1/sessions/lookup", json={"sessionToken": 5}, headers=WRITE)
    assert error_fields(await problem(r, 422)) == {"sessionToken"}


# ---- errors -----------------------------------------------------------------------------------------

async def test_unknown_route_is_distinct_from_a_missing_row(client):
    for method, path in (("GET", "/v2/users/x"), ("GET", "/users/x"), ("POST", "/v1/user"),
                         ("GET", "/v1/authenticators/a/b")):
        body = await problem(await client.request(method, path, headers=WRITE), 404)
        assert body["code"] == "route_not_found" and body["requestId"]
    r = await client.delete("/v1/authenticators", headers=WRITE)  # the path exists; the method does not
    assert (await problem(r, 405))["code"] == "method_not_allowed" and r.headers["Allow"] == "POST"
    body = await problem(await client.get(f"/v1/users/{MISSING_USER}", headers=READ), 404)
    assert body["code"] == "not_found"


async def test_validation_reports_every_invalid_field_in_our_words(client):
    r = await client.post("/v1/users", headers=WRITE, json={
        "email": "not-an-email", "name": 5, "role": "GOD", "password": "", "colour": "red",
        "emailVerified": "2026-01-01T00:00:00", "subscription": {"status": "nope", "cancelAtPeriodEnd": "yes"}})
    body = await problem(r, 422)
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages == {
        "email": "must be an e-mail address",
        "name": "must be a string",
        "role": "must be one of USER, ADMIN",
        "password": "must not be empty",
        "colour": "is not a known field",
        "emailVerified": "must carry a time zone (Z or +hh:mm)",
        "subscription.status": "must be one of INACTIVE, ACTIVE, CANCELLED, PAST_DUE, TRIALING",
        "subscription.cancelAtPeriodEnd": "must be true or false",
    }
    assert "Expected" not in body["detail"] and "regex" not in str(body)
    r = await client.post("/v1/users/batch", headers=WRITE,
                          json={"users": [{"email": "a@b.c"}, {"name": "no e-mail"}, {"email": "x" * 400}]})
    assert error_fields(await problem(r, 422)) == {"users[1].email", "users[2].email"}
    # A batch of 10,000 bad rows: the first 100 errors are listed, the detail counts all 20,000.
    r = await client.post("/v1/users/batch", headers=WRITE,
                          json={"users": [{"email": "bad", "role": "x"} for _ in range(10_000)]})
    body = await problem(r, 422)
    assert len(body["errors"]) == 100 and body["errors"][0] == {"field": "users[0].email",
                                                                  "message": "must be an e-mail address"}
    assert body["detail"].startswith("20000 fields are invalid: users[0].email, users[0].role")
    assert len(body["detail"]) < 200 and len(await r.read()) < 20_000
    r = await client.post("/v1/sessions", headers=WRITE, json={"userId": "", "expires": "soon"})
    assert {e["field"]: e["message"] for e in (await problem(r, 422))["errors"]} == {
        "userId": "must not be empty",
        "expires": "must be an RFC 3339 date-time, e.g. 2026-01-02T03:04:05Z",
        "sessionToken": "is required",
    }


# ---- HTTP manners -----------------------------------------------------------------------------------

async def test_created_answers_say_where_the_resource_is(client):
    r = await client.post("/v1/users", json={"email": unique_email()}, headers=WRITE)
    user = await r.json()
    assert r.headers["Location"] == f"/v1/users/{user['id']}"
    assert (await client.get(r.headers["Location"], headers=READ)).status == 200

    body = account_body(user["id"], provider="my provider/x", providerAccountId="id/with?odd#chars")
    r = await client.post("/v1/accounts", json=body, headers=WRITE)
    assert r.status == 201
    got = await client.get(r.headers["Location"], headers=READ)
    assert got.status == 200 and (await got.json())["providerAccountId"] == body["providerAccountId"]

    for path, payload in ((f"/v1/users/{user['id']}/subscription", {"status": "ACTIVE"}),
                          (f"/v1/users/{user['id']}/natal-data",
                           {"birthDate": "1990-01-01T12:00:00Z", "location": "Lisbon"})):
        r = await client.put(path, json=payload, headers=WRITE)
        assert r.status == 201 and r.headers["Location"] == path
        r = await client.put(path, json=payload, headers=WRITE)
        assert r.status == 200 and "Location" not in r.headers
    r = await client.post("/v1/charts", json={"chartType": "tropical", "chartData": {}, "ttlSeconds": 60},
                          headers=WRITE)
    assert (await client.get(r.headers["Location"], headers=READ)).status == 200


async def test_head_on_every_get_route(client):
    from service.app import all_routes

    user = await new_user(client)
    gets = [r.path for r in all_routes() if r.method == "GET"]
    assert "/v1/users/{id}" in gets
    for template in gets:
        path = template.replace("{id}", user["id"]).replace("{email}", user["email"])
        path = path.replace("{provider}", "google").replace("{providerAccountId}", "x").replace("{credentialID}", "x")
        got = await client.get(path, headers=READ)
        head = await client.head(path, headers=READ)
        assert head.status == got.status, path
        assert await head.read() == b"", path
        assert head.headers.get("Content-Type") == got.headers.get("Content-Type"), path


async def test_bearer_scheme_is_case_insensitive_and_server_is_anonymous(client):
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        r = await client.get("/v1/cache/stats", headers={"Authorization": f"{scheme} {WRITE_TOKEN}"})
        assert r.status == 200, scheme
    for header in (f"Basic {WRITE_TOKEN}", "Bearer", "Bearer ", WRITE_TOKEN, f"Bearer{WRITE_TOKEN}"):
        r = await client.get("/v1/cache/stats", headers={"Authorization": header})
        await problem(r, 401)
    for r in (await client.get("/healthz"), await client.get("/nope"),
              await client.post("/v1/users", data=b"{", headers=WRITE)):
        assert r.headers["Server"] == "astrowellness-data"
    # A request too malformed to reach the app is answered by aiohttp itself: no versions there either.
    for raw in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad\x00: y\r\n\r\n", b"NOT HTTP\r\n\r\n"):
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(raw)
        answer = (await asyncio.wait_for(reader.read(4000), 10)).decode(errors="replace")
        writer.close()
        assert answer.startswith("HTTP/1.") and " 400 " in answer.split("\r\n")[0], answer[:200]
        assert "Server: astrowellness-data\r\n" in answer and "aiohttp" not in answer, answer[:400]


async def test_unknown_cache_tags_are_refused(client):
    r = await client.post("/v1/cache/invalidate", json={"tags": ["user:x", "chart:-", "users:x", "everything"]},
                          headers=WRITE)
    body = await problem(r, 422)
    assert error_fields(body) == {"tags[2]", "tags[3]"}
    assert "user:<userId>" in body["errors"][0]["message"]
    r = await client.post("/v1/cache/invalidate", json={"tags": ["user:x", "chart:-"]}, headers=WRITE)
    assert r.status == 204


async def test_concurrent_counter_updates_keep_one_of_the_values(client):
    user = await new_user(client)
    body = authenticator_body(user["id"])
    r = await client.post("/v1/authenticators", json=body, headers=WRITE)
    location = r.headers["Location"]
    answers = await asyncio.gather(*(client.patch(location, json={"counter": n}, headers=WRITE)
                                     for n in range(1, 21)))
    assert [a.status for a in answers] == [200] * 20
    assert (await (await client.get(location, headers=READ)).json())["counter"] in range(1, 21)
