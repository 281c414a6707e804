"""External programs some tests need (pgbouncer, psql...). CI installs them and sets
AW_REQUIRE_TOOLS=1, so there a missing tool fails the test; elsewhere the test is skipped, visibly."""

import os
import shutil

import pytest


def require_tool(name: str, package: str | None = None) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if path:
        return path
    message = f"{name} is not installed (Debian package: {package or name})"
    if os.environ.get("AW_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)
