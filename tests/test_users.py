"""Users routes (API.md § Users) against the real app: success and failure paths."""

import asyncio
import uuid

from tests.conftest import READ, WRITE, error_fields, problem, unique_email

USER_KEYS = {"id", "email", "emailVerified", "name", "image", "role", "createdAt", "updatedAt"}


async def create_user(client, **fields):
    body = {"email": unique_email(), **fields}
    r = await client.post("/v1/users", json=body, headers=WRITE)
    assert r.status == 201, await r.text()
    return await r.json()


async def count_users_with_email(deps, email):
    return await deps.db.fetchval("SELECT count(*) FROM users WHERE lower(email) = lower($1)", email)


# ---- create ---------------------------------------------------------------------------------------

async def test_create_trims_and_lowercases_email_and_returns_the_user_shape(client):
    email = unique_email()
    r = await client.post("/v1/users", headers=WRITE, json={
        "email": f"  {email.upper()}\t", "name": "Ada", "image": "https://img/a.png",
        "emailVerified": "2026-01-02T04:04:05.678+01:00", "role": "ADMIN"})
    assert r.status == 201, await r.text()
    user = await r.json()
    assert set(user) == USER_KEYS
    assert user["email"] == email
    assert user["name"] == "Ada" and user["image"] == "https://img/a.png" and user["role"] == "ADMIN"
    assert user["emailVerified"] == "2026-01-02T03:04:05.678Z"
    assert user["id"].startswith("c") and len(user["id"]) == 25


async def test_create_defaults(client):
    user = await create_user(client)
    assert user["role"] == "USER"
    assert user["name"] is None and user["image"] is None and user["emailVerified"] is None


async def test_duplicate_email_is_409_naming_email_even_in_another_case(client, deps):
    email = unique_email()
    await create_user(client, email=email)
    r = await client.post("/v1/users", json={"email": " " + email.upper()}, headers=WRITE)
    body = await problem(r, 409)
    assert body["code"] == "conflict"
    assert error_fields(body) == {"email"}
    assert await count_users_with_email(deps, email) == 1


async def test_create_rejects_bad_input_with_422_and_creates_nothing(client, deps):
    email = unique_email()
    cases = [
        ({"email": "not-an-email"}, "email"),
        ({"email": ""}, "email"),
        ({"email": email, "nickname": "x"}, "nickname"),
        ({"email": email, "name": 5}, "name"),
        ({"email": 12}, "email"),
        ({"email": email, "role": "GOD"}, "role"),
        ({"email": email, "emailVerified": "yesterday"}, "emailVerified"),
        ({"email": email, "emailVerified": "2026-01-02T03:04:05"}, "emailVerified"),  # no time zone
        ({"name": "no email"}, "email"),
        ({"email": email, "subscription": {"status": "WHATEVER"}}, "subscription.status"),
        ({"email": email, "natalData": {"location": "Paris"}}, "natalData.birthDate"),
    ]
    for body, field in cases:
        r = await client.post("/v1/users", json=body, headers=WRITE)
        answer = await problem(r, 422)
        assert answer["code"] == "validation_error"
        assert field in error_fields(answer), (body, answer)
    r = await client.post("/v1/users", json=[email], headers=WRITE)
    assert r.status == 422
    assert await count_users_with_email(deps, email) == 0


async def test_create_with_nested_subscription_and_natal_data(client, deps):
    r = await client.post("/v1/users", headers=WRITE, json={
        "email": unique_email(),
        "subscription": {"stripeCustomerId": "cus_" + uuid.uuid4().hex, "status": "ACTIVE",
                         "currentPeriodEnd": "2030-01-01T00:00:00Z", "cancelAtPeriodEnd": True},
        "natalData": {"birthDate": "1990-05-17T14:30:00Z", "location": "Paris", "latitude": 48.85,
                      "longitude": 2.35, "timezone": "Europe/Paris"},
    })
    assert r.status == 201, await r.text()
    user = await r.json()
    assert user["subscription"]["userId"] == user["id"]
    assert user["subscription"]["status"] == "ACTIVE"
    assert user["subscription"]["cancelAtPeriodEnd"] is True
    assert user["subscription"]["currentPeriodEnd"] == "2030-01-01T00:00:00.000Z"
    assert user["natalData"]["userId"] == user["id"]
    assert user["natalData"]["location"] == "Paris"
    assert user["natalData"]["timezone"] == "Europe/Paris"
    assert await deps.db.fetchval('SELECT count(*) FROM subscriptions WHERE "userId" = $1', user["id"]) == 1
    assert await deps.db.fetchval('SELECT count(*) FROM natal_data WHERE "userId" = $1', user["id"]) == 1


async def test_invalid_nested_natal_data_creates_nothing(client, deps):
    email = unique_email()
    customer = "cus_" + uuid.uuid4().hex
    for natal in ({"birthDate": "1990-05-17T14:30:00Z", "location": "Paris", "latitude": 91},
                  {"birthDate": "1990-05-17T14:30:00Z", "location": "Paris", "longitude": -181},
                  {"birthDate": "1990-05-17T14:30:00Z", "location": "   "},
                  {"birthDate": "1990-05-17T14:30:00Z", "location": "Paris", "timezone": "Mars/Olympus"}):
        r = await client.post("/v1/users", headers=WRITE, json={
            "email": email, "subscription": {"stripeCustomerId": customer}, "natalData": natal})
        body = await problem(r, 422)
        assert any(f.startswith("natalData.") for f in error_fields(body)), body
    assert await count_users_with_email(deps, email) == 0
    assert await deps.db.fetchval('SELECT count(*) FROM subscriptions WHERE "stripeCustomerId" = $1', customer) == 0
    r = await client.get(f"/v1/users/by-email/{email}", headers=READ)
    assert r.status == 404
    # The e-mail is still free.
    await create_user(client, email=email)


async def test_create_needs_write_scope(client):
    r = await client.post("/v1/users", json={"email": unique_email()}, headers=READ)
    assert (await problem(r, 403))["code"] == "forbidden"


# ---- batch ----------------------------------------------------------------------------------------

async def test_batch_creates_all_and_answers_count(client, deps):
    emails = [unique_email("batch") for _ in range(5)]
    r = await client.post("/v1/users/batch", headers=WRITE, json={"users": [
        {"email": emails[0].upper(), "name": "A", "password": "secret-1",
         "emailVerified": "2026-01-02T03:04:05.678Z", "role": "ADMIN"},
        *({"email": e} for e in emails[1:]),
    ]})
    assert r.status == 200, await r.text()
    assert await r.json() == {"count": 5}
    rows = await deps.db.fetch("SELECT email, name, role::text AS role, password, "
                               "\"emailVerified\" FROM users WHERE email = any($1::text[])", emails)
    assert {row["email"] for row in rows} == set(emails)
    first = next(row for row in rows if row["email"] == emails[0])
    assert first["name"] == "A" and first["role"] == "ADMIN"
    assert first["emailVerified"] == "2026-01-02T03:04:05.678Z"
    assert first["password"].startswith("$2") and first["password"] != "secret-1"
    user = await (await client.get(f"/v1/users/by-email/{emails[0]}", headers=READ)).json()
    r = await client.post(f"/v1/users/{user['id']}/verify-password", json={"password": "secret-1"}, headers=READ)
    assert await r.json() == {"valid": True}


async def test_batch_skip_duplicates_skips_existing_and_repeated(client, deps):
    existing = (await create_user(client))["email"]
    fresh = [unique_email("batch") for _ in range(3)]
    r = await client.post("/v1/users/batch", headers=WRITE, json={"skipDuplicates": True, "users": [
        {"email": existing}, {"email": fresh[0]}, {"email": fresh[1]}, {"email": fresh[1].upper()},
        {"email": fresh[2]},
    ]})
    assert r.status == 200, await r.text()
    assert await r.json() == {"count": 3}
    for email in fresh + [existing]:
        assert await count_users_with_email(deps, email) == 1


async def test_batch_with_a_duplicate_is_409_and_inserts_nothing(client, deps):
    existing = (await create_user(client))["email"]
    fresh = [unique_email("batch") for _ in range(3)]
    for users in ([{"email": fresh[0]}, {"email": existing}, {"email": fresh[1]}],
                  [{"email": fresh[0]}, {"email": fresh[2]}, {"email": " " + fresh[2].upper()}]):
        r = await client.post("/v1/users/batch", headers=WRITE, json={"users": users, "skipDuplicates": False})
        body = await problem(r, 409)
        assert error_fields(body) == {"email"}
    for email in fresh:
        assert await count_users_with_email(deps, email) == 0


async def test_batch_rejects_bad_items(client, deps):
    fresh = unique_email("batch")
    for body, field in (
        ({"users": [{"email": fresh}, {"email": "nope"}]}, "users[1].email"),
        ({"users": [{"email": fresh, "password": "x" * 73}]}, "users[0].password"),
        ({"users": [{"email": fresh}], "skipDuplicates": "yes"}, "skipDuplicates"),
        ({"users": [{"email": fresh, "extra": 1}]}, "users[0].extra"),
        ({}, "users"),
    ):
        r = await client.post("/v1/users/batch", headers=WRITE, json=body)
        assert field in error_fields(await problem(r, 422)), body
    assert await count_users_with_email(deps, fresh) == 0


async def test_empty_batch_counts_zero(client):
    r = await client.post("/v1/users/batch", headers=WRITE, json={"users": []})
    assert r.status == 200
    assert await r.json() == {"count": 0}


# ---- read ----------------------------------------------------------------------------------------

async def test_get_by_id_and_404(client):
    user = await create_user(client, name="Grace")
    r = await client.get(f"/v1/users/{user['id']}", headers=READ)
    assert r.status == 200
    assert await r.json() == user
    r = await client.get(f"/v1/users/{user['id']}", headers=WRITE)  # write includes read
    assert r.status == 200
    r = await client.get("/v1/users/cnotauserid000000000000000", headers=READ)
    assert (await problem(r, 404))["code"] == "not_found"


async def test_get_with_select_returns_only_named_fields(client):
    user = await create_user(client, name="Grace")
    r = await client.get(f"/v1/users/{user['id']}", params={"select": "id,email"}, headers=READ)
    assert r.status == 200
    assert await r.json() == {"id": user["id"], "email": user["email"]}
    r = await client.get(f"/v1/users/{user['id']}", params={"select": "name, role,updatedAt"}, headers=READ)
    assert await r.json() == {"name": "Grace", "role": "USER", "updatedAt": user["updatedAt"]}


async def test_select_of_an_unknown_field_is_400_naming_select(client):
    user = await create_user(client, password="hunter2")
    for select in ("id,password", "nope", ",", ""):
        r = await client.get(f"/v1/users/{user['id']}", params={"select": select}, headers=READ)
        body = await problem(r, 400)
        assert body["code"] == "bad_request"
        assert error_fields(body) == {"select"}
    r = await client.get(f"/v1/users/{user['id']}", params={"include": "sessions"}, headers=READ)
    assert error_fields(await problem(r, 400)) == {"include"}
    r = await client.get(f"/v1/users/{user['id']}", params={"expand": "x"}, headers=READ)
    assert error_fields(await problem(r, 400)) == {"expand"}


async def test_get_with_include_embeds_relations(client):
    r = await client.post("/v1/users", headers=WRITE, json={
        "email": unique_email(),
        "subscription": {"status": "TRIALING"},
        "natalData": {"birthDate": "1990-05-17T14:30:00Z", "location": "Lyon"},
    })
    user = await r.json()
    for provider in ("google", "github"):
        r = await client.post("/v1/accounts", headers=WRITE, json={
            "userId": user["id"], "type": "oauth", "provider": provider,
            "providerAccountId": uuid.uuid4().hex, "access_token": "at-" + provider})
        assert r.status == 201
    r = await client.get(f"/v1/users/{user['id']}", params={"include": "subscription,natalData,accounts"},
                         headers=WRITE)  # OAuth tokens are shown to write-scope callers only
    assert r.status == 200
    full = await r.json()
    assert set(full) == USER_KEYS | {"subscription", "natalData", "accounts"}
    assert full["email"] == user["email"]
    assert full["subscription"] == user["subscription"]
    assert full["natalData"] == user["natalData"]
    assert [a["provider"] for a in full["accounts"]] == ["github", "google"]
    assert full["accounts"][1]["access_token"] == "at-google"
    assert all(a["userId"] == user["id"] for a in full["accounts"])

    r = await client.get(f"/v1/users/{user['id']}", params={"include": "accounts", "select": "id"}, headers=READ)
    only = await r.json()
    assert set(only) == {"id", "accounts"}


async def test_include_of_missing_relations(client):
    user = await create_user(client)
    r = await client.get(f"/v1/users/{user['id']}", params={"include": "subscription,natalData,accounts"},
                         headers=READ)
    full = await r.json()
    assert full["subscription"] is None and full["natalData"] is None and full["accounts"] == []
    r = await client.get("/v1/users/cnotauserid000000000000000", params={"include": "accounts"}, headers=READ)
    assert r.status == 404


async def test_by_email_is_case_insensitive(client):
    user = await create_user(client)
    for form in (user["email"], user["email"].upper(), " " + user["email"].title()):
        r = await client.get(f"/v1/users/by-email/{form}", headers=READ)
        assert r.status == 200, form
        assert await r.json() == user
    r = await client.get(f"/v1/users/by-email/{unique_email()}", headers=READ)
    assert (await problem(r, 404))["code"] == "not_found"


async def test_by_email_finds_rows_stored_in_mixed_case_by_the_old_platform(client, deps):
    email = unique_email().replace("user", "Legacy")
    await deps.db.execute("INSERT INTO users (id, email) VALUES ($1, $2)", "c" + uuid.uuid4().hex[:24], email)
    r = await client.get(f"/v1/users/by-email/{email.lower()}", headers=READ)
    assert r.status == 200
    assert (await r.json())["email"] == email


async def test_by_account(client):
    user = await create_user(client)
    pid = uuid.uuid4().hex
    r = await client.post("/v1/accounts", headers=WRITE, json={
        "userId": user["id"], "type": "oauth", "provider": "google", "providerAccountId": pid})
    assert r.status == 201
    r = await client.get(f"/v1/users/by-account/google/{pid}", headers=READ)
    assert r.status == 200
    assert await r.json() == user
    r = await client.get(f"/v1/users/by-account/github/{pid}", headers=READ)
    assert r.status == 404
    r = await client.get(f"/v1/users/by-account/google/{uuid.uuid4().hex}", headers=READ)
    assert (await problem(r, 404))["code"] == "not_found"


# ---- update --------------------------------------------------------------------------------------

async def test_patch_each_field(client):
    user = await create_user(client, name="Before", image="img-before")
    uid = user["id"]
    new_email = unique_email()
    steps = [
        ({"email": "  " + new_email.upper()}, {"email": new_email}),
        ({"name": "After"}, {"name": "After"}),
        ({"image": "img-after"}, {"image": "img-after"}),
        ({"emailVerified": "2026-03-04T05:06:07.089Z"}, {"emailVerified": "2026-03-04T05:06:07.089Z"}),
        ({"role": "ADMIN"}, {"role": "ADMIN"}),
        ({"name": None}, {"name": None}),
        ({"emailVerified": None, "image": None}, {"emailVerified": None, "image": None}),
    ]
    expected = dict(user)
    for patch, change in steps:
        r = await client.patch(f"/v1/users/{uid}", json=patch, headers=WRITE)
        assert r.status == 200, await r.text()
        answer = await r.json()
        expected.update(change)
        assert {k: v for k, v in answer.items() if k != "updatedAt"} == \
            {k: v for k, v in expected.items() if k != "updatedAt"}, patch
        assert answer["updatedAt"] >= expected["updatedAt"]
        expected["updatedAt"] = answer["updatedAt"]
        # Reads see the change (the cache is invalidated).
        assert await (await client.get(f"/v1/users/{uid}", headers=READ)).json() == answer
    assert (await client.get(f"/v1/users/by-email/{user['email']}", headers=READ)).status == 404
    assert (await client.get(f"/v1/users/by-email/{new_email}", headers=READ)).status == 200


async def test_empty_patch_changes_nothing(client):
    user = await create_user(client, name="Same")
    r = await client.patch(f"/v1/users/{user['id']}", json={}, headers=WRITE)
    assert r.status == 200
    answer = await r.json()
    assert answer["name"] == "Same" and answer["email"] == user["email"]


async def test_patch_moves_updated_at_forward(client, deps):
    user = await create_user(client)
    await deps.db.execute('UPDATE users SET "updatedAt" = \'2001-01-01 00:00:00\' WHERE id = $1', user["id"])
    r = await client.patch(f"/v1/users/{user['id']}", json={"name": "New"}, headers=WRITE)
    answer = await r.json()
    assert answer["updatedAt"] > "2001-01-01T00:00:00.000Z"
    assert answer["updatedAt"] >= user["createdAt"]
    assert answer["createdAt"] == user["createdAt"]


async def test_patch_failures(client, deps):
    user = await create_user(client)
    other = await create_user(client)
    r = await client.patch(f"/v1/users/{user['id']}", json={"email": other["email"].upper()}, headers=WRITE)
    body = await problem(r, 409)
    assert error_fields(body) == {"email"}
    r = await client.patch("/v1/users/cnotauserid000000000000000", json={"name": "x"}, headers=WRITE)
    assert (await problem(r, 404))["code"] == "not_found"
    for patch, field in (({"password": "pw"}, "password"), ({"email": None}, "email"), ({"role": None}, "role"),
                         ({"email": "bad"}, "email"), ({"name": 1}, "name"), ({"id": "cx"}, "id"),
                         ({"createdAt": "2020-01-01T00:00:00Z"}, "createdAt")):
        r = await client.patch(f"/v1/users/{user['id']}", json=patch, headers=WRITE)
        assert field in error_fields(await problem(r, 422)), patch
    unchanged = await (await client.get(f"/v1/users/{user['id']}", headers=READ)).json()
    assert unchanged == user
    assert await deps.db.fetchval("SELECT password FROM users WHERE id = $1", user["id"]) is None


# ---- passwords -----------------------------------------------------------------------------------

async def verify(client, uid, password, headers=READ):
    return await client.post(f"/v1/users/{uid}/verify-password", json={"password": password}, headers=headers)


async def test_set_and_verify_password(client, deps):
    user = await create_user(client, password="first pass")
    uid = user["id"]
    assert await (await verify(client, uid, "first pass")).json() == {"valid": True}
    assert await (await verify(client, uid, "first pasS")).json() == {"valid": False}
    r = await client.put(f"/v1/users/{uid}/password", json={"password": "sëcond ☃"}, headers=WRITE)
    assert r.status == 204
    assert await r.read() == b""
    assert await (await verify(client, uid, "sëcond ☃")).json() == {"valid": True}
    assert await (await verify(client, uid, "first pass")).json() == {"valid": False}
    stored = await deps.db.fetchval("SELECT password FROM users WHERE id = $1", uid)
    assert stored.startswith("$2") and "sëcond" not in stored
    # The write token may verify too.
    assert await (await verify(client, uid, "sëcond ☃", WRITE)).json() == {"valid": True}


async def test_user_without_password_never_verifies(client):
    user = await create_user(client)
    for attempt in ("", "x", "null"):
        r = await verify(client, user["id"], attempt or "anything")
        assert r.status == 200
        assert await r.json() == {"valid": False}


async def test_user_with_a_non_bcrypt_stored_password_is_false_not_500(client, deps):
    user = await create_user(client)
    await deps.db.execute("UPDATE users SET password = 'plain' WHERE id = $1", user["id"])
    r = await verify(client, user["id"], "plain")
    assert r.status == 200
    assert await r.json() == {"valid": False}


async def test_password_failures(client, deps):
    user = await create_user(client, password="keep me")
    uid = user["id"]
    missing = "cnotauserid000000000000000"
    assert (await problem(await client.put(f"/v1/users/{missing}/password", json={"password": "p"},
                                            headers=WRITE), 404))["code"] == "not_found"
    assert (await problem(await verify(client, missing, "p"), 404))["code"] == "not_found"
    too_long = ["x" * 73, "é" * 37]  # 73 and 74 bytes
    for bad in too_long + [""]:
        r = await client.put(f"/v1/users/{uid}/password", json={"password": bad}, headers=WRITE)
        assert error_fields(await problem(r, 422)) == {"password"}, bad
        assert error_fields(await problem(await verify(client, uid, bad), 422)) == {"password"}
        r = await client.post("/v1/users", json={"email": unique_email(), "password": bad}, headers=WRITE)
        assert error_fields(await problem(r, 422)) == {"password"}
    ok72 = "y" * 72
    assert (await client.put(f"/v1/users/{uid}/password", json={"password": ok72}, headers=WRITE)).status == 204
    assert await (await verify(client, uid, ok72)).json() == {"valid": True}
    for body in ({}, {"password": 1}, {"password": None}, {"password": "p", "old": "q"}):
        r = await client.put(f"/v1/users/{uid}/password", json=body, headers=WRITE)
        assert (await problem(r, 422))["code"] == "validation_error"
    assert (await problem(await client.put(f"/v1/users/{uid}/password", json={"password": "p"},
                                            headers=READ), 403))["code"] == "forbidden"
    assert await (await verify(client, uid, ok72)).json() == {"valid": True}


async def test_password_hash_never_in_any_answer(client, deps):
    password = "hash-hunt-" + uuid.uuid4().hex[:8]
    r = await client.post("/v1/users", json={"email": unique_email(), "password": password,
                                             "subscription": {}, "natalData": {
                                                 "birthDate": "1990-01-01T00:00:00Z", "location": "Oslo"}},
                          headers=WRITE)
    user = await r.json()
    uid = user["id"]
    stored = await deps.db.fetchval("SELECT password FROM users WHERE id = $1", uid)
    assert stored and stored.startswith("$2")
    pid = uuid.uuid4().hex
    await client.post("/v1/accounts", json={"userId": uid, "type": "oauth", "provider": "p",
                                            "providerAccountId": pid}, headers=WRITE)
    token = uuid.uuid4().hex
    await client.post("/v1/sessions", json={"sessionToken": token, "userId": uid,
                                            "expires": "2099-01-01T00:00:00Z"}, headers=WRITE)
    answers = [await r.text()]
    for method, path, kw in (
        ("GET", f"/v1/users/{uid}", {}),
        ("GET", f"/v1/users/{uid}?include=subscription,natalData,accounts", {}),
        ("GET", f"/v1/users/by-email/{user['email']}", {}),
        ("GET", f"/v1/users/by-account/p/{pid}", {}),
        ("GET", f"/v1/users?email=eq.{user['email']}", {}),
        ("PATCH", f"/v1/users/{uid}", {"json": {"name": "n"}}),
        ("POST", "/v1/sessions/lookup", {"json": {"sessionToken": token}}),
        ("POST", f"/v1/users/{uid}/verify-password", {"json": {"password": password}}),
        ("PUT", f"/v1/users/{uid}/password", {"json": {"password": password}}),
        ("GET", "/openapi.json", {}),
    ):
        r = await client.request(method, path, headers=WRITE, **kw)
        assert r.status < 400, (path, await r.text())
        answers.append(await r.text())
    stored_now = await deps.db.fetchval("SELECT password FROM users WHERE id = $1", uid)
    for text in answers:
        assert stored not in text and stored_now not in text
        assert password not in text
        assert '"password":"$2' not in text
    assert "password" not in user


# ---- delete --------------------------------------------------------------------------------------

async def test_delete_user_cascades(client, deps):
    r = await client.post("/v1/users", headers=WRITE, json={
        "email": unique_email(), "subscription": {},
        "natalData": {"birthDate": "1990-05-17T14:30:00Z", "location": "Rome"}})
    user = await r.json()
    uid = user["id"]
    pid = uuid.uuid4().hex
    token = "sess-" + uuid.uuid4().hex
    assert (await client.post("/v1/accounts", headers=WRITE, json={
        "userId": uid, "type": "oauth", "provider": "google", "providerAccountId": pid})).status == 201
    assert (await client.post("/v1/sessions", headers=WRITE, json={
        "sessionToken": token, "userId": uid, "expires": "2099-01-01T00:00:00Z"})).status == 201
    # Warm the caches so a stale entry would show.
    assert (await client.get(f"/v1/users/{uid}", headers=READ)).status == 200
    assert (await client.get(f"/v1/users/by-email/{user['email']}", headers=READ)).status == 200
    assert (await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)).status == 200

    r = await client.delete(f"/v1/users/{uid}", headers=WRITE)
    assert r.status == 204
    assert (await client.get(f"/v1/users/{uid}", headers=READ)).status == 404
    assert (await client.get(f"/v1/users/by-email/{user['email']}", headers=READ)).status == 404
    assert (await client.get(f"/v1/users/by-account/google/{pid}", headers=READ)).status == 404
    assert (await client.get(f"/v1/accounts/google/{pid}", headers=READ)).status == 404
    assert (await client.post("/v1/sessions/lookup", json={"sessionToken": token}, headers=READ)).status == 404
    for table in ("accounts", "sessions", "subscriptions", "natal_data"):
        assert await deps.db.fetchval(f'SELECT count(*) FROM {table} WHERE "userId" = $1', uid) == 0, table
    r = await client.delete(f"/v1/users/{uid}", headers=WRITE)
    assert (await problem(r, 404))["code"] == "not_found"
    r = await client.delete(f"/v1/users/{uid}", headers=READ)
    assert r.status == 403


async def test_delete_user_sessions_counts(client, deps):
    user = await create_user(client)
    other = await create_user(client)
    tokens = [uuid.uuid4().hex for _ in range(3)]
    for token in tokens:
        r = await client.post("/v1/sessions", headers=WRITE, json={
            "sessionToken": token, "userId": user["id"], "expires": "2099-01-01T00:00:00Z"})
        assert r.status == 201
    kept = uuid.uuid4().hex
    await client.post("/v1/sessions", headers=WRITE, json={
        "sessionToken": kept, "userId": other["id"], "expires": "2099-01-01T00:00:00Z"})
    assert (await client.post("/v1/sessions/lookup", json={"sessionToken": tokens[0]}, headers=READ)).status == 200

    r = await client.delete(f"/v1/users/{user['id']}/sessions", headers=WRITE)
    assert r.status == 200
    assert await r.json() == {"count": 3}
    assert (await client.post("/v1/sessions/lookup", json={"sessionToken": tokens[0]}, headers=READ)).status == 404
    assert (await client.post("/v1/sessions/lookup", json={"sessionToken": kept}, headers=READ)).status == 200
    assert await deps.db.fetchval('SELECT count(*) FROM sessions WHERE "userId" = $1', user["id"]) == 0
    r = await client.delete(f"/v1/users/{user['id']}/sessions", headers=WRITE)
    assert await r.json() == {"count": 0}
    # The user is still there.
    assert (await client.get(f"/v1/users/{user['id']}", headers=READ)).status == 200
    r = await client.delete("/v1/users/cnotauserid000000000000000/sessions", headers=WRITE)
    assert r.status == 404


# ---- races ---------------------------------------------------------------------------------------

async def test_fifty_concurrent_creates_of_one_email(client, deps):
    email = unique_email("race")
    forms = [email if i % 2 else f" {email.upper()} " for i in range(50)]
    answers = await asyncio.gather(*(
        client.post("/v1/users", json={"email": form}, headers=WRITE) for form in forms))
    statuses = sorted(r.status for r in answers)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == 49, statuses
    for r in answers:
        if r.status == 409:
            assert error_fields(await r.json()) == {"email"}
    assert await count_users_with_email(deps, email) == 1
