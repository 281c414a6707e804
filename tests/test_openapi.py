"""/openapi.json is a valid OpenAPI 3.1 document, precise enough to generate a client from: it is checked
with openapi-spec-validator, and a client generated from it by openapi-python-client is used against
the running service."""

import asyncio
import importlib
import json
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from openapi_spec_validator import validate

from service.app import all_routes, create_app
from service.problems import ROUTE_NOT_FOUND, TITLES
from tests.conftest import READ, WRITE_TOKEN, unique_email


@pytest.fixture
async def document(client):
    r = await client.get("/openapi.json")
    assert r.status == 200
    return await r.json()


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def resolve(document, node):
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = document["components"][kind][name]
    return node


async def test_document_is_valid_openapi_31(document):
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"] == "3.1.0"
    routes = {(r.path, r.method.lower()) for r in all_routes()}
    assert {(p, m) for p, m, _ in operations(document)} == routes


async def test_every_answer_and_parameter_is_typed(document):
    schemas = document["components"]["schemas"]
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        for parameter in operation["parameters"]:
            schema = resolve(document, parameter["schema"])
            assert schema.get("type") in ("string", "integer"), (where, parameter)
        for status, answer in operation["responses"].items():
            answer = resolve(document, answer)
            for content in answer.get("content", {}).values():
                schema = resolve(document, content["schema"])
                assert schema.get("type") == "object" or "oneOf" in schema, (where, status)
        if operation["security"]:  # a /v1 route: token problems are documented
            assert {"401", "403"} <= set(operation["responses"]), where
        if "requestBody" in operation:
            assert "422" in operation["responses"] and "400" in operation["responses"], where
    # No untyped list items anywhere (the old ListPage had `items: {type: object}`).
    text = json.dumps(schemas)
    assert '"items": {"type": "object"}' not in text
    assert "ListPage" not in schemas


async def test_list_pages_have_typed_items_and_typed_parameters(document):
    page = resolve(document, document["paths"]["/v1/users"]["get"]["responses"]["200"]
                   ["content"]["application/json"]["schema"])
    item = resolve(document, page["properties"]["data"]["items"])
    assert set(item["properties"]) == {"id", "email", "emailVerified", "name", "image", "role", "createdAt",
                                       "updatedAt"}
    assert "required" not in item  # select may leave any field out
    params = {p["name"]: p["schema"] for p in document["paths"]["/v1/users"]["get"]["parameters"]}
    assert params["page"]["type"] == params["limit"]["type"] == "integer"
    assert params["limit"]["maximum"] == 100
    assert resolve(document, params["count"])["enum"] == ["auto", "exact", "estimated", "none"]
    assert {"sort", "select", "cursor", "email", "role", "createdAt"} <= set(params)
    assert "like" in params["email"]["pattern"] and "like" not in params["createdAt"]["pattern"]
    for path in ("/v1/users/{id}/authenticators", "/v1/users/{id}/accounts", "/v1/subscriptions"):
        schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("Page"), path


async def test_documented_parameter_syntax_is_what_the_service_accepts(client, document):
    """Each list route's documented examples and patterns agree with the service's own parsing."""
    import re

    for path in ("/v1/users", "/v1/subscriptions"):
        params = {p["name"]: p["schema"] for p in document["paths"][path]["get"]["parameters"]}
        for name, schema in params.items():
            for example in schema.get("examples", []):
                assert re.search(schema["pattern"], example), (name, example)
                r = await client.get(path, params={name: example}, headers=READ)
                assert r.status == 200, (path, name, example, await r.text())
        for accepted in ("-createdAt", "createdAt, -id", "+id"):
            assert re.search(params["sort"]["pattern"], accepted)
            assert (await client.get(path, params={"sort": accepted}, headers=READ)).status == 200
        for refused in ("", "nope", "id,"):
            assert not re.search(params["sort"]["pattern"], refused)
            assert (await client.get(path, params={"sort": refused}, headers=READ)).status == 400


async def test_problem_codes_are_an_enum_of_every_code_the_service_answers(document):
    codes = resolve(document, {"$ref": "#/components/schemas/ProblemCode"})["enum"]
    assert set(codes) == {code for code, _ in TITLES.values()} | {ROUTE_NOT_FOUND}
    assert {"method_not_allowed", "request_timeout", "internal_error", "route_not_found"} <= set(codes)
    body = document["components"]["schemas"]["ProblemBody"]
    assert body["properties"]["code"] == {"$ref": "#/components/schemas/ProblemCode"}
    webhook = document["paths"]["/v1/stripe/webhook"]["post"]
    assert webhook["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("StripeEvent")
    answer = resolve(document, webhook["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(answer["properties"]["outcome"]["enum"]) == {"applied", "pending", "duplicate", "ignored", "conflict",
                                                          "rejected"}  # issue 12
    assert document["components"]["schemas"]["AuthenticatorCreate"]["examples"]


async def test_a_generated_client_works_against_the_service(settings, tmp_path, client):
    """openapi-python-client turns the document into a package; that package then creates, reads and
    lists through a real server, and a problem comes back typed with its code."""
    spec = tmp_path / "openapi.json"
    spec.write_bytes(await (await client.get("/openapi.json")).read())
    (tmp_path / "config.yaml").write_text("post_hooks: []\nproject_name_override: aw_generated\n"
                                          "package_name_override: aw_generated\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    process = await asyncio.create_subprocess_exec(
        str(generator), "generate", "--path", str(spec), "--meta", "none", "--output-path",
        str(tmp_path / "aw_generated"), "--config", str(tmp_path / "config.yaml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    output = (await asyncio.wait_for(process.communicate(), timeout=120))[0].decode()
    assert process.returncode == 0, output
    assert "Warning" not in output, output  # every part of the document was understood
    sys.path.insert(0, str(tmp_path))
    try:
        generated = importlib.import_module("aw_generated")
        models = importlib.import_module("aw_generated.models")
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        try:
            base = str(server.make_url("")).rstrip("/")
            async with generated.AuthenticatedClient(base_url=base, token=WRITE_TOKEN,
                                                     raise_on_unexpected_status=True) as api:
                email = unique_email()
                created = await importlib.import_module("aw_generated.api.users.create_user").asyncio_detailed(
                    client=api, body=models.UserCreate(email=email, name="Generated"))
                assert created.status_code == 201
                user = created.parsed
                assert isinstance(user, models.UserWithRelations) and user.email == email
                assert created.headers["Location"] == f"/v1/users/{user.id}"

                page = await importlib.import_module("aw_generated.api.lists.list_users").asyncio(
                    client=api, email=f"eq.{email}", select="id,email", limit=5)
                assert isinstance(page, models.UserPage)
                assert [(u.id, u.email) for u in page.data] == [(user.id, email)]

                passkey = models.AuthenticatorCreate(
                    credential_id=f"cred-{user.id}", user_id=user.id, provider_account_id=user.id,
                    credential_public_key="pQECAyYgASFYIA", counter=0, credential_device_type="singleDevice",
                    credential_backed_up=False)
                made = await importlib.import_module(
                    "aw_generated.api.authenticators.create_authenticator").asyncio(client=api, body=passkey)
                assert isinstance(made, models.Authenticator) and made.credential_id == f"cred-{user.id}"

                missing = await importlib.import_module("aw_generated.api.users.get_user").asyncio_detailed(
                    client=api, id="no-such-user")
                assert missing.status_code == 404
                assert isinstance(missing.parsed, models.ProblemBody)
                assert missing.parsed.code == models.ProblemCode.NOT_FOUND
        finally:
            await server.close()
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "aw_generated" or m.startswith("aw_generated.")]:
            del sys.modules[name]
