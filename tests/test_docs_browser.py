"""GET /docs in a real headless Chromium (Debian's chromium and chromium-driver, driven by selenium):
the page renders the service's routes from /openapi.json, loads nothing from outside, and "try it out"
with a bearer token calls the service."""

import asyncio
import json

import pytest
from aiohttp.test_utils import TestServer

from service.app import create_app
from tests.conftest import READ_TOKEN, WRITE, unique_email
from tests.tools import require_tool

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run", "--disable-dev-shm-usage", "--window-size=1400,2000")
WAIT = 30  # seconds for the page to render or answer (2 shared cores)


@pytest.fixture
async def live_server(settings):
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def browser():
    chromium = require_tool("chromium")
    driver_path = require_tool("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver) -> list[str]:
    """Every URL the page asked for (from Chromium's network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def try_it_out(driver, operation_id: str, params: dict[str, str] | None = None) -> tuple[str, str]:
    """Open an operation, press "Try it out", fill its parameters, Execute: (status, body) shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT)
    block = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"[id$='-{operation_id}']")))
    if "is-open" not in block.get_attribute("class"):
        block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait.until(lambda d: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    button = block.find_element(By.CSS_SELECTOR, ".try-out__btn")
    if button.text.strip().lower() == "try it out":
        button.click()
    for name, value in (params or {}).items():
        # The inputs turn editable only once "Try it out" has re-rendered the block.
        field = wait.until(lambda d, name=name: next(
            (f for f in block.find_elements(By.CSS_SELECTOR, f"tr[data-param-name='{name}'] input")
             if f.is_enabled()), None))
        field.clear()
        field.send_keys(value)
    for clear in block.find_elements(By.CSS_SELECTOR, ".btn-clear"):  # the previous call's answer
        clear.click()
        wait.until(lambda d: not block.find_elements(By.CSS_SELECTOR, ".live-responses-table"))
    block.find_element(By.CSS_SELECTOR, ".execute").click()
    status = wait.until(lambda d: block.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response .response-col_status")).text.strip()
    body = block.find_element(By.CSS_SELECTOR, ".live-responses-table .response-col_description pre").text
    return status, body


def authorize(driver, token: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".auth-wrapper .authorize"))).click()
    field = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".modal-ux input")))
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper .authorize").click()
    driver.find_element(By.CSS_SELECTOR, ".modal-ux .btn-done").click()


def browse_docs(driver, base: str, user_id: str, email: str) -> dict:
    """Everything the test checks, done in one thread (selenium blocks; the server runs in the loop)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/docs")
    WebDriverWait(driver, WAIT).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) > 20)
    seen = {"paths": {e.get_attribute("data-path") for e in driver.find_elements(By.CSS_SELECTOR,
                                                                                  ".opblock-summary-path")},
            "title": driver.find_element(By.CSS_SELECTOR, ".info .title").text}
    seen["without_token"] = try_it_out(driver, "get_user", {"id": user_id})
    authorize(driver, READ_TOKEN)
    seen["with_token"] = try_it_out(driver, "get_user", {"id": user_id})
    seen["missing"] = try_it_out(driver, "get_user", {"id": "no-such-user"})
    seen["urls"] = requested_urls(driver)
    # Script errors only: the 401 and 404 answers above are logged as failed loads ("network").
    seen["errors"] = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
    seen["email"] = email
    return seen


async def test_docs_render_the_routes_and_try_it_out_calls_the_service(live_server, browser):
    client_session = live_server  # the same server the browser talks to
    base = str(client_session.make_url("")).rstrip("/")
    import aiohttp

    async with aiohttp.ClientSession() as http:
        email = unique_email()
        async with http.post(f"{base}/v1/users", json={"email": email, "name": "Docs"}, headers=WRITE) as r:
            assert r.status == 201
            user = await r.json()
    seen = await asyncio.to_thread(browse_docs, browser, base, user["id"], email)

    assert "Astrowellness data service" in seen["title"]
    for path in ("/v1/users/{id}", "/v1/authenticators", "/v1/accounts/{provider}/{providerAccountId}",
                 "/v1/sessions/lookup", "/v1/stripe/webhook"):
        assert path in seen["paths"], sorted(seen["paths"])
    status, body = seen["without_token"]
    assert status == "401" and "unauthorized" in body
    status, body = seen["with_token"]
    assert status == "200", body
    assert json.loads(body)["email"] == email
    status, body = seen["missing"]
    assert status == "404" and json.loads(body)["code"] == "not_found"
    # Nothing from outside: every request went to the service itself (no CDN).
    outside = [u for u in seen["urls"] if not u.startswith(base) and not u.startswith("data:")]
    assert not outside, outside
    assert f"{base}/docs/swagger-ui-bundle.js" in seen["urls"]
    assert not seen["errors"], seen["errors"]


async def test_docs_assets_are_served_from_the_package(client):
    r = await client.get("/docs")
    assert r.status == 200 and r.content_type == "text/html"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    page = await r.text()
    assert "http" not in page.replace("http-equiv", "")  # no absolute URL: no CDN
    r = await client.get("/docs/swagger-ui-bundle.js")
    assert r.status == 200 and r.content_type == "text/javascript"
    assert b"SwaggerUIBundle" in await r.read()
    for name in ("../pyproject.toml", "index.html", "swagger-ui-bundle.js.map"):
        r = await client.get(f"/docs/{name}")
        assert r.status == 404, name
