"""ops/: the alert rules pass promtool (syntax and a unit test firing each alert), link runbooks that exist,
and every query of the Grafana dashboard returns data from a real Prometheus scraping the service."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
import yaml

from service import PROJECT_ROOT
from service.app import create_app
from tests.conftest import READ, WRITE, make_settings, unique_email
from tests.pg_cluster import free_port
from tests.stripe_helpers import checkout_event, deliver_ok, uid
from tests.tools import require_tool

OPS = PROJECT_ROOT / "ops"
ALERTS = OPS / "prometheus" / "alerts.yml"
ALERT_TESTS = OPS / "prometheus" / "alerts_test.yml"
OPERATIONS_DOC = PROJECT_ROOT / "docs" / "operations.md"


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def promtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("promtool", "prometheus"), *args], cwd=ALERTS.parent,
                          capture_output=True, text=True, timeout=60, check=False)


# ---- alert rules -----------------------------------------------------------------------------------------

def test_alert_rules_pass_promtool_check():
    result = promtool("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_in_promtool_unit_tests():
    tested = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    cases = [case for test in tested for case in test["alert_rule_test"]]
    for rule in alert_rules():
        own = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in own), f"no test where {rule['alert']} fires"
        assert any(not case["exp_alerts"] for case in own), f"no test where {rule['alert']} stays quiet"
    result = promtool("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_can_fail():
    """The unit tests compare: an alert expected where none fires is reported (a guard for the test above)."""
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    tests["tests"][0]["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "page", "job": "data"}}]
    broken = ALERT_TESTS.parent / f".broken-{uuid.uuid4().hex[:8]}.yml"
    broken.write_text(yaml.safe_dump(tests))
    try:
        result = promtool("test", "rules", broken.name)
    finally:
        broken.unlink()
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr


def github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_links_a_runbook_section_of_operations_md():
    anchors = {github_anchor(line.lstrip("#")) for line in OPERATIONS_DOC.read_text().splitlines()
               if line.startswith("#")}
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md", url
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor} in docs/operations.md"
        assert rule["labels"]["severity"] in ("page", "warn")


# ---- the dashboard -----------------------------------------------------------------------------------

def load_dashboard_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_dashboard", OPS / "grafana" / "build_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboard_json_is_the_generators_output():
    builder = load_dashboard_module()
    assert json.loads(builder.OUT.read_text()) == builder.build(), "run python ops/grafana/build_dashboard.py"
    titles = [p["title"] for p in builder.build()["panels"] if p["type"] == "row"]
    assert titles == ["Golden signals by route", "Database pool and statements", "Cache", "Passwords (bcrypt)",
                      "Stripe", "Chart sweeps", "Process"]


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [{rules}]
scrape_configs:
  - job_name: data
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


async def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except (aiohttp.ClientError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def load(client, seconds: float) -> None:
    """A little of every kind of traffic: reads (hits and misses), writes with passwords, Stripe events."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = await client.post("/v1/users", headers=WRITE, json={"email": unique_email(), "password": "load pw 1"})
        user = await r.json()
        for _ in range(5):
            await client.get(f"/v1/users/{user['id']}", headers=READ)
        await client.get(f"/v1/users/{uuid.uuid4().hex}", headers=READ)
        await client.post(f"/v1/users/{user['id']}/verify-password", headers=READ, json={"password": "load pw 1"})
        await deliver_ok(client, checkout_event(user_id=user["id"], customer=uid("cus"), sub=uid("sub"),
                                                created=int(time.time())))
        await deliver_ok(client, checkout_event(user_id="c" + uuid.uuid4().hex[:24], customer=uid("cus"),
                                                sub=uid("sub"), created=int(time.time())))  # pending
        await asyncio.sleep(0.05)


async def test_every_dashboard_query_returns_data_from_a_real_prometheus(
        aiohttp_client, migrated_database_url, redis_url, tmp_path: Path):
    binary = require_tool("prometheus")
    settings = make_settings(migrated_database_url, redis_url, database_read_url=migrated_database_url,
                             sweep_interval_seconds=1, metrics_refresh_seconds=0.5)
    client = await aiohttp_client(create_app(settings))
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(port=client.server.port, rules=json.dumps(str(ALERTS))))
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        async with aiohttp.ClientSession() as http:
            async def query(expr: str) -> list:
                async with http.get(f"{api}/query", params={"query": expr}) as r:
                    body = await r.json()
                    assert body["status"] == "success", (expr, body)
                    return body["data"]["result"]

            async def target_up():
                return [s["value"][1] for s in await query('up{job="data"}')] == ["1"]

            await wait_for(target_up, 30, "Prometheus to scrape the service")
            await load(client, 6)
            builder = load_dashboard_module()
            # Grafana's variables, as Grafana would fill them in for a 1 s scrape interval and job "All".
            exprs = [(title, expr.replace("$__rate_interval", "30s").replace("$job", ".+"))
                     for title, expr in builder.queries(builder.build())]
            empty = [(title, expr) for title, expr in exprs if not await query(expr)]
            assert not empty, f"dashboard queries without data: {empty}"
            # The rules load in a real Prometheus too, and nothing fires on a healthy service under load.
            async with http.get(f"{api}/rules") as r:
                rules = [rule for group in (await r.json())["data"]["groups"] for rule in group["rules"]]
            assert {rule["name"] for rule in rules} == {rule["alert"] for rule in alert_rules()}
            assert all(rule["health"] == "ok" for rule in rules), rules
            assert [rule["name"] for rule in rules if rule["state"] != "inactive"] == []
    finally:
        process.terminate()
        try:
            _, errors = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, errors = process.communicate()
    assert process.returncode in (0, -15), errors.decode()[-2000:]
