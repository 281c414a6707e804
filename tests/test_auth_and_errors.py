"""Service-token auth over the whole route table, problem+json errors, request ids, OpenAPI, secret-free logs."""

import logging
import re
import uuid

import pytest

from service.app import all_routes, create_app
from service.deps import DEPS
from service.logs import JsonFormatter
from service.routing import PUBLIC
from service.routing import READ as READ_SCOPE
from service.routing import WRITE as WRITE_SCOPE
from tests.conftest import (
    READ,
    READ_TOKEN,
    WRITE,
    WRITE_TOKEN,
    make_settings,
    unique_email,
)

UNAUTHENTICATED = {("POST", "/v1/stripe/webhook")}
READ_ONLY_POSTS = {("POST", "/v1/sessions/lookup"), ("POST", "/v1/users/{id}/verify-password")}
OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/{asset}"}
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


def concrete(path):
    return re.sub(r"{(\w+)}", lambda m: f"dummy-{m.group(1)}", path)


def app_routes(client):
    """(method, path template) of every route the running app serves, HEAD aside."""
    found = set()
    for route in client.server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method not in ("HEAD", "*") and path:
            found.add((route.method, path))
    return found


def assert_problem(r, body, status):
    assert r.status == status, body
    assert r.content_type == "application/problem+json"
    assert PROBLEM_FIELDS <= set(body), body
    assert body["status"] == status
    assert isinstance(body["type"], str) and isinstance(body["title"], str) and isinstance(body["detail"], str)
    assert r.headers.get("X-Request-Id")
    if "requestId" in body:
        assert body["requestId"] == r.headers["X-Request-Id"]


# ---- auth over the route table -------------------------------------------------------------------

def test_the_route_table_is_what_the_app_serves(client):
    declared = {(r.method, r.path) for r in all_routes()}
    assert app_routes(client) == declared
    # No two declarations of one route.
    assert len(declared) == len(all_routes())


def test_only_documented_routes_are_public_or_read_only_writes():
    routes = all_routes()
    public = {(r.method, r.path) for r in routes if r.scope == PUBLIC}
    assert public == {("GET", p) for p in OPEN} | UNAUTHENTICATED
    for route in routes:
        assert route.scope in (PUBLIC, READ_SCOPE, WRITE_SCOPE), route
        if route.path.startswith("/v1") and route.method != "GET" and (route.method, route.path) not in UNAUTHENTICATED:
            expected = READ_SCOPE if (route.method, route.path) in READ_ONLY_POSTS else WRITE_SCOPE
            assert route.scope == expected, (route.method, route.path)


async def test_every_v1_route_needs_a_known_token(client):
    checked = 0
    for method, template in sorted(app_routes(client)):
        if not template.startswith("/v1") or (method, template) in UNAUTHENTICATED:
            continue
        path = concrete(template)
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Basic {WRITE_TOKEN}"},
                        {"Authorization": "Bearer "}, {"Authorization": WRITE_TOKEN}):
            r = await client.request(method, path, json={}, headers=headers)
            body = await r.json()
            assert r.status == 401, (method, template, headers, body)
            assert_problem(r, body, 401)
            assert body["code"] == "unauthorized"
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
        checked += 1
    assert checked >= 25


async def test_read_token_cannot_write(client):
    write_routes = [(r.method, r.path) for r in all_routes() if r.scope == WRITE_SCOPE]
    assert len(write_routes) >= 15
    for method, template in write_routes:
        r = await client.request(method, concrete(template), json={}, headers=READ)
        body = await r.json()
        assert r.status == 403, (method, template, body)
        assert_problem(r, body, 403)
        assert body["code"] == "forbidden"


async def test_read_token_may_read(client):
    read_routes = [(r.method, r.path) for r in all_routes() if r.scope == READ_SCOPE]
    assert READ_ONLY_POSTS <= set(read_routes)
    for method, template in read_routes:
        r = await client.request(method, concrete(template), json={}, headers=READ)
        assert r.status not in (401, 403), (method, template, await r.text())
    # The read-only POSTs do their work with a read token.
    r = await client.post("/v1/users", json={"email": unique_email(), "password": "pw"}, headers=WRITE)
    user = await r.json()
    r = await client.post(f"/v1/users/{user['id']}/verify-password", json={"password": "pw"}, headers=READ)
    assert r.status == 200 and await r.json() == {"valid": True}
    r = await client.post("/v1/sessions/lookup", json={"sessionToken": uuid.uuid4().hex}, headers=READ)
    assert r.status == 404


async def test_write_token_passes_auth_everywhere(client):
    for route in all_routes():
        if route.scope == PUBLIC:
            continue
        r = await client.request(route.method, concrete(route.path), json={}, headers=WRITE)
        assert r.status not in (401, 403), (route.method, route.path, await r.text())


async def test_open_routes_need_no_token(client):
    for path in sorted(OPEN):
        r = await client.get(path.replace("{asset}", "swagger-ui.css"))
        assert r.status == 200, (path, await r.text())
        assert r.headers.get("X-Request-Id")
    # The webhook is not under bearer auth: a missing signature is a 400, not a 401.
    r = await client.post("/v1/stripe/webhook", data=b"{}")
    assert r.status == 400


async def test_unknown_token_in_a_token_list_with_a_prefix_is_refused(client):
    for token in (WRITE_TOKEN + "x", WRITE_TOKEN[:-1], READ_TOKEN.upper(), f"{WRITE_TOKEN} {READ_TOKEN}"):
        r = await client.get("/v1/cache/stats", headers={"Authorization": f"Bearer {token}"})
        assert r.status == 401, token


# ---- errors --------------------------------------------------------------------------------------

async def test_malformed_json_is_400_and_changes_nothing(client, deps):
    email = unique_email()
    for raw in (b'{"email": "' + email.encode() + b'"', b"not json", b"\xff\xfe", b"{'email': 1}", b""):
        r = await client.post("/v1/users", data=raw, headers={**WRITE, "Content-Type": "application/json"})
        body = await r.json()
        assert_problem(r, body, 400)
        assert body["code"] == "bad_request"
    assert await deps.db.fetchval("SELECT count(*) FROM users WHERE email = $1", email) == 0


@pytest.fixture
async def small_client(aiohttp_client, migrated_database_url, redis_url):
    return await aiohttp_client(create_app(make_settings(migrated_database_url, redis_url, max_body_bytes=1024)))


async def test_body_over_the_limit_is_413(small_client):
    email = unique_email()
    r = await small_client.post("/v1/users", json={"email": email, "name": "x" * 2000}, headers=WRITE)
    body = await r.json()
    assert_problem(r, body, 413)
    assert body["code"] == "payload_too_large"
    r = await small_client.get(f"/v1/users/by-email/{email}", headers=READ)
    assert r.status == 404
    r = await small_client.post("/v1/users", json={"email": email, "name": "x" * 500}, headers=WRITE)
    assert r.status == 201


async def test_unknown_route_and_method_are_problems(client):
    for path in ("/nope", "/v1/nope", "/v1/users/a/b/c"):
        r = await client.get(path, headers=WRITE)
        body = await r.json()
        assert_problem(r, body, 404)
        assert body["code"] == "route_not_found"
    r = await client.put("/healthz")
    assert_problem(r, await r.json(), 405)
    assert "GET" in r.headers.get("Allow", "")


async def test_every_kind_of_error_is_problem_json(client):
    user = (await (await client.post("/v1/users", json={"email": unique_email()}, headers=WRITE)).json())
    cases = [
        ("POST", "/v1/users", {"data": b"{", "headers": {**WRITE, "Content-Type": "application/json"}}, 400),
        ("GET", "/v1/users", {"params": {"nope": "eq.1"}, "headers": READ}, 400),
        ("GET", "/v1/users/x", {"params": {"select": "password"}, "headers": READ}, 400),
        ("GET", "/v1/users/x", {}, 401),
        ("DELETE", "/v1/users/x", {"headers": READ}, 403),
        ("GET", "/v1/users/cnotauserid000000000000000", {"headers": READ}, 404),
        ("POST", "/v1/users", {"json": {"email": user["email"]}, "headers": WRITE}, 409),
        ("POST", "/v1/users", {"json": {"email": 5}, "headers": WRITE}, 422),
        ("POST", "/v1/sessions", {"json": {"sessionToken": "t", "userId": "nope", "expires": "2099-01-01T00:00:00Z"},
                                  "headers": WRITE}, 422),
    ]
    codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
             422: "validation_error"}
    for method, path, kw, status in cases:
        r = await client.request(method, path, **kw)
        body = await r.json()
        assert_problem(r, body, status)
        assert body["code"] == codes[status], (path, body)
        if status in (409, 422):
            assert body["errors"] and all(set(e) == {"field", "message"} for e in body["errors"])


async def test_request_id_is_echoed_or_made(client):
    for method, path, headers, status in (("GET", "/healthz", {}, 200), ("GET", "/v1/users/x", {}, 401),
                                          ("GET", "/v1/users/cnotauserid000000000000000", READ, 404),
                                          ("GET", "/nope", {}, 404)):
        sent = "req-" + uuid.uuid4().hex
        r = await client.request(method, path, headers={**headers, "X-Request-Id": sent})
        assert r.status == status
        assert r.headers["X-Request-Id"] == sent
        if status >= 400:
            body = await r.json()
            assert body.get("requestId", sent) == sent
    made = set()
    for _ in range(2):
        r = await client.get("/healthz")
        made.add(r.headers["X-Request-Id"])
    assert len(made) == 2 and all(made)
    # A request id that could forge log lines or headers is replaced, not echoed.
    for bad in ("a b", "x" * 500, "id\u2028two"):
        r = await client.get("/healthz", headers={"X-Request-Id": bad})
        assert r.headers["X-Request-Id"] not in ("", bad)


async def test_openapi_lists_every_route(client):
    r = await client.get("/openapi.json")
    assert r.status == 200
    document = await r.json()
    assert document["openapi"].startswith("3.1")
    listed = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert listed == {(route.method, route.path) for route in all_routes()}
    schemas = document["components"]["schemas"]
    for route in all_routes():
        operation = document["paths"][route.path][route.method.lower()]
        assert str(route.status) in operation["responses"]
        if route.body is not None:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in schemas
        if route.scope == PUBLIC:
            assert operation["security"] == []
        else:
            assert "401" in operation["responses"]
    assert "password" not in schemas["User"]["properties"]


# ---- logs ----------------------------------------------------------------------------------------

class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def log_records():
    handler = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def test_no_secret_in_any_log_line(aiohttp_client, migrated_database_url, redis_url, log_records):
    settings = make_settings(migrated_database_url, redis_url, log_queries=True)
    client = await aiohttp_client(create_app(settings))
    deps = client.server.app[DEPS]
    password = "pw-" + uuid.uuid4().hex
    session_token = "sess-" + uuid.uuid4().hex
    verification_token = "vt-" + uuid.uuid4().hex
    email = unique_email()

    r = await client.post("/v1/users", json={"email": email, "password": password}, headers=WRITE)
    assert r.status == 201
    user = await r.json()
    uid = user["id"]
    hashed = await deps.db.fetchval("SELECT password FROM users WHERE id = $1", uid)
    assert hashed.startswith("$2")
    steps = [
        ("POST", f"/v1/users/{uid}/verify-password", {"password": password}, READ, 200),
        ("POST", f"/v1/users/{uid}/verify-password", {"password": password + "x"}, READ, 200),
        ("PUT", f"/v1/users/{uid}/password", {"password": password}, WRITE, 204),
        ("POST", "/v1/users", {"email": email, "password": password}, WRITE, 409),
        ("POST", "/v1/sessions", {"sessionToken": session_token, "userId": uid,
                                  "expires": "2099-01-01T00:00:00Z"}, WRITE, 201),
        ("POST", "/v1/sessions", {"sessionToken": session_token, "userId": uid,
                                  "expires": "2099-01-01T00:00:00Z"}, WRITE, 409),
        ("POST", "/v1/sessions/lookup", {"sessionToken": session_token}, READ, 200),
        ("POST", "/v1/sessions/update", {"sessionToken": session_token, "expires": "2099-02-01T00:00:00Z"}, WRITE, 200),
        ("POST", "/v1/verification-tokens", {"identifier": email, "token": verification_token,
                                             "expires": "2099-01-01T00:00:00Z"}, WRITE, 201),
        ("POST", "/v1/verification-tokens", {"identifier": email, "token": verification_token,
                                             "expires": "2099-01-01T00:00:00Z"}, WRITE, 409),
        ("POST", "/v1/verification-tokens/use", {"identifier": email, "token": verification_token}, WRITE, 200),
        ("POST", "/v1/verification-tokens/use", {"identifier": email, "token": verification_token}, WRITE, 404),
        ("POST", "/v1/sessions/delete", {"sessionToken": session_token}, WRITE, 200),
        ("POST", "/v1/sessions/lookup", {"sessionToken": session_token}, READ, 404),
    ]
    for method, path, body, headers, status in steps:
        r = await client.request(method, path, json=body, headers=headers)
        assert r.status == status, (path, await r.text())
    # A malformed body that carries a secret, and a bad token.
    r = await client.post("/v1/sessions/lookup", data=f'{{"sessionToken": "{session_token}"'.encode(),
                          headers={**READ, "Content-Type": "application/json"})
    assert r.status == 400
    r = await client.get("/v1/cache/stats", headers={"Authorization": f"Bearer {password}"})
    assert r.status == 401

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in log_records]
    # The flow was logged (access lines and query names), so the check below has something to look at.
    assert any('"route":"/v1/sessions/lookup"' in line for line in lines), lines[:5]
    assert any('"query":"use_verification_token"' in line for line in lines)
    secrets = {"password": password, "hash": hashed, "session token": session_token,
               "verification token": verification_token, "write token": WRITE_TOKEN, "read token": READ_TOKEN}
    for line in lines:
        for what, secret in secrets.items():
            assert secret not in line, f"{what} in log line: {line}"


def test_token_check_compares_with_every_token_in_constant_time(monkeypatch):
    """No early exit: the presented token is compared (hmac.compare_digest) with every known one."""
    from service import auth

    tokens = auth.parse_service_tokens("a:tok-a,b:tok-b:read,c:tok-c")
    calls = []
    real = auth.hmac.compare_digest

    def counting(x, y):
        calls.append(1)
        return real(x, y)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for presented in ("tok-a", "tok-c", "nope"):
        calls.clear()
        try:
            auth.authenticate(tokens, f"Bearer {presented}")
        except Exception:
            pass
        assert len(calls) == 3, presented
    assert auth.authenticate(tokens, "Bearer tok-b").scope == "read"


async def test_non_utf8_password_is_a_422(client):
    # A lone surrogate is valid JSON but no UTF-8 text: it cannot be a password.
    body = b'{"email": "' + unique_email().encode() + b'", "password": "ab\\ud800cd"}'
    r = await client.post("/v1/users", data=body, headers={**WRITE, "Content-Type": "application/json"})
    assert r.status == 422, await r.text()
    assert (await r.json())["errors"][0]["field"] == "password"
    # Raw bytes that are not UTF-8: the same.
    email = unique_email()
    r = await client.post("/v1/users", data=b'{"email": "' + email.encode() + b'", "password": "\xff\xfe"}',
                          headers={**WRITE, "Content-Type": "application/json"})
    assert r.status == 422
    assert (await r.json())["errors"][0]["field"] == "password"
    r = await client.get(f"/v1/users/by-email/{email}", headers=READ)
    assert r.status == 404  # nothing was created
    # Not JSON at all stays a 400.
    r = await client.post("/v1/users", data=b'{"email": "\xff', headers={**WRITE, "Content-Type": "application/json"})
    assert r.status == 400
