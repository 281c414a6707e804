"""The clients in clients/ against the real service: a fresh migrated database, `python -m service serve`
on a free port, then the Auth.js adapter's vitest suite and the Python client's pytest suite.

Each suite writes a machine-readable report; a run passes only with every test passed and none skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from service import migrate
from tests.conftest import REDIS_PREFIX_ROOT
from tests.databases import create_database, drop_database
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[1]
ADAPTER = ROOT / "clients" / "authjs-adapter"
PYTHON_CLIENT = ROOT / "clients" / "python"
WRITE_TOKEN = f"clients-write-{uuid.uuid4().hex}"
READ_TOKEN = f"clients-read-{uuid.uuid4().hex}"
STRIPE_SECRET = f"whsec_clients_{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service():
    """A real service process on its own database; answers (base URL, database URL)."""
    database_url = asyncio.run(create_database("aw_test_clients"))
    process = None
    try:
        migrate.apply(database_url)
        port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url,
               "SERVICE_TOKENS": f"clients:{WRITE_TOKEN}:write,clients-read:{READ_TOKEN}:read",
               "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET, "BCRYPT_ROUNDS": "4", "SWEEP_INTERVAL_SECONDS": "0",
               "CACHE_PREFIX": f"{REDIS_PREFIX_ROOT}clients:", "LOG_LEVEL": "WARNING"}
        process = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"the service exited: {process.stderr.read()}"
            try:
                with urllib.request.urlopen(base_url + "/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the service did not become ready in 30 s"
            time.sleep(0.1)
        yield base_url, database_url
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        asyncio.run(drop_database(database_url))


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"{' '.join(command)} failed ({result.returncode}):\n"
                                    f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return result


def test_authjs_adapter_suite_passes_against_the_service(service, tmp_path):
    base_url, _ = service
    npm = require_tool("npm")
    npx = require_tool("npx")
    env = {**os.environ, "AW_BASE_URL": base_url, "AW_TOKEN": WRITE_TOKEN, "CI": "true",
           "npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"}
    run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"], ADAPTER, env, timeout=300)
    run([npm, "run", "--silent", "build"], ADAPTER, env, timeout=120)  # the package compiles and loads...
    node = require_tool("node")
    loads = ("import('./dist/index.js').then((m) => { if (typeof m.AstrowellnessAdapter !== 'function'"
             " || m.default !== m.AstrowellnessAdapter) process.exit(3) })")
    run([node, "--input-type=module", "-e", loads], ADAPTER, env, timeout=60)
    run([npm, "run", "--silent", "typecheck"], ADAPTER, env, timeout=120)  # ...and its tests type-check
    report = tmp_path / "vitest.json"
    run([npx, "vitest", "run", "--reporter=json", f"--outputFile={report}"], ADAPTER, env, timeout=300)

    results = json.loads(report.read_text())
    failed = [t["fullName"] for f in results["testResults"] for t in f["assertionResults"]
              if t["status"] != "passed"]
    assert failed == [], f"not passed: {failed}"
    assert results["numFailedTests"] == 0 and results["numPendingTests"] == 0 and results["numTodoTests"] == 0
    assert results["numPassedTests"] >= 40
    names = {t["title"] for f in results["testResults"] for t in f["assertionResults"]}
    for method in ("createUser", "getUser", "getUserByEmail", "getUserByAccount", "updateUser", "deleteUser",
                   "linkAccount", "unlinkAccount", "getAccount", "createSession", "getSessionAndUser",
                   "updateSession", "deleteSession", "createVerificationToken", "useVerificationToken",
                   "createAuthenticator", "getAuthenticator", "listAuthenticatorsByUserId",
                   "updateAuthenticatorCounter"):
        assert any(method in name for name in names), f"no adapter test names {method}"


def test_python_client_suite_passes_against_the_service(service, tmp_path):
    base_url, database_url = service
    installed = tmp_path / "site"
    # Installed as a user would (pip, from its pyproject), so the packaging is tested too.
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(installed),
         str(PYTHON_CLIENT)], tmp_path, dict(os.environ), timeout=300)
    env = {**os.environ, "PYTHONPATH": str(installed), "AW_BASE_URL": base_url, "AW_TOKEN": WRITE_TOKEN,
           "AW_READ_TOKEN": READ_TOKEN, "AW_STRIPE_SECRET": STRIPE_SECRET, "AW_DATABASE_URL": database_url,
           "AW_SERVICE_ROOT": str(ROOT)}
    report = tmp_path / "junit.xml"
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(PYTHON_CLIENT / "pyproject.toml"),
         "--rootdir", str(PYTHON_CLIENT), f"--junitxml={report}", str(PYTHON_CLIENT / "tests")],
        tmp_path, env, timeout=300)

    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
    assert counts["tests"] >= 20, counts
    files = {case.get("classname", "").split(".")[-1] for case in suite.iter("testcase")}
    assert {"test_users", "test_identity", "test_resources", "test_transport"} <= files, files


# ---- the Python client's contract with the service, checked without a server ------------------------
# The client is its own distribution (internal services install it without the service's database
# drivers), so its models restate the service's answers; these tests keep the two from drifting.

def _client_modules():
    sys.path.insert(0, str(PYTHON_CLIENT / "src"))
    try:
        from astrowellness_data_client import models, resources
    finally:
        sys.path.remove(str(PYTHON_CLIENT / "src"))
    return models, resources


def _template(path: str) -> str:
    """/v1/users/{id}/accounts and f"/v1/users/{seg(user_id)}/accounts" -> /v1/users/{}/accounts."""
    return re.sub(r"\{[^{}]*(\([^()]*\))?[^{}]*\}", "{}", path)


def test_the_python_client_calls_every_route():
    from service.app import all_routes

    _, resources = _client_modules()
    source = Path(resources.__file__).read_text()
    called = {(m, _template(p)) for m, p in re.findall(r'_call\(\s*"(\w+)",\s*f?"([^"]+)"', source)}
    called |= {("GET", _template(p)) for p in re.findall(r'_(?:page|iter)\(\s*f?"([^"]+)"', source)}
    called |= {(m, _template(p)) for m, p in re.findall(r'_t\.request\(\s*"(\w+)",\s*f?"([^"]+)"', source)}
    # Routes for programs: /v1/* and the operational ones (a browser page such as /docs is not a client's).
    served = {(r.method, _template(r.path)) for r in all_routes() if r.method != "HEAD" and (
        r.path.startswith("/v1/") or r.path in ("/healthz", "/readyz", "/metrics", "/openapi.json"))}
    assert served - called == set(), "routes the Python client does not call"
    assert called - served == set(), "the Python client calls routes the service does not serve"


def test_the_python_clients_models_have_the_services_fields():
    import msgspec

    from service import problems, schemas

    models, _ = _client_modules()
    pairs = [(getattr(models, name), getattr(schemas, name)) for name in (
        "User", "Subscription", "NatalData", "Account", "UserWithRelations", "Session", "SessionAndUser",
        "VerificationToken", "Authenticator", "Chart", "Count", "Valid", "CacheStats", "Health")]
    pairs += [(models.Pagination, schemas.Page), (models.Page, schemas.ListPage),
              (models.ProblemBody, problems.ProblemBody), (models.FieldError, problems.FieldError)]
    for client_model, service_struct in pairs:
        assert set(client_model.__struct_fields__) == set(service_struct.__struct_fields__), client_model
        required = {f.name for f in msgspec.structs.fields(client_model) if f.required}
        assert required <= set(service_struct.__struct_fields__)


def test_the_python_clients_arguments_are_the_services_body_fields():
    import inspect

    from service import schemas

    _, resources = _client_modules()
    pairs = {
        resources.Users.create: schemas.UserCreate, resources.Users.update: schemas.UserPatch,
        resources.Accounts.link: schemas.AccountCreate, resources.Accounts.update_tokens: schemas.AccountTokensPatch,
        resources.Sessions.create: schemas.SessionCreate,
        resources.VerificationTokens.create: schemas.VerificationTokenCreate,
        resources.Authenticators.create: schemas.AuthenticatorCreate,
        resources.Subscriptions.put: schemas.SubscriptionIn, resources.NatalDataResource.put: schemas.NatalDataIn,
        resources.Charts.create: schemas.ChartCreate,
    }
    for method, body in pairs.items():
        parameters = inspect.signature(method).parameters.values()
        named = {p.name for p in parameters if p.kind is p.KEYWORD_ONLY or p.name == "email"}
        assert named == set(body.__struct_fields__), method.__qualname__


def test_the_adapter_sends_the_services_body_fields():
    """The adapter sends only listed fields (the service refuses unknown ones): the lists match the bodies."""
    from service import schemas

    source = (ADAPTER / "src" / "index.ts").read_text()

    def listed(name: str) -> set[str]:
        match = re.search(rf"const {name} = \[(.*?)\] as const", source, re.DOTALL)
        assert match, name
        return set(re.findall(r'"(\w+)"', match.group(1)))

    assert listed("ACCOUNT_FIELDS") == set(schemas.AccountCreate.__struct_fields__)
    assert listed("TOKEN_FIELDS") == set(schemas.AccountTokensPatch.__struct_fields__)
    assert listed("USER_FIELDS") == set(schemas.UserPatch.__struct_fields__)
    body = re.search(r"async createAuthenticator\(authenticator\) \{\s*const body = \{(.*?)\}", source, re.DOTALL)
    assert set(re.findall(r"(\w+):", body.group(1))) == set(schemas.AuthenticatorCreate.__struct_fields__)
