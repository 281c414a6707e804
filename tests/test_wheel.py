"""The wheel works anywhere: built from the project, installed into a new venv, run from another folder.

The new venv gets the wheel only; the third-party dependencies are borrowed from the test venv through
a path line (not its .pth files, so the editable install of the checkout is not visible there), which
keeps this test offline and fast. The test checks that `service` really comes from the new venv.
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import aiohttp

from tests.pg_cluster import free_port
from tests.test_deploy import TOKENS, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_FOLDERS = ("sql", "migrations", "config")
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "service", *SHIPPED_FOLDERS)


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.exists():
            shutil.copy2(path, source / name)
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(out), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    return next(out.glob("astrowellness_data-*.whl"))


def make_venv(tmp_path: Path, wheel: Path) -> Path:
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    return target


async def test_wheel_ships_its_sql_and_runs_migrate_and_serve_from_another_folder(empty_database, redis_url,
                                                                                     tmp_path):
    wheel = await asyncio.to_thread(build_wheel, tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    # Every file of the three folders is in the wheel (whatever other branches add there).
    for folder in SHIPPED_FOLDERS:
        expected = {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*") if p.is_file()}
        shipped = {n.split("service/_bundled/", 1)[1] for n in names if n.startswith(f"service/_bundled/{folder}/")}
        assert expected and shipped == expected, (folder, sorted(expected ^ shipped))
    target = await asyncio.to_thread(make_venv, tmp_path, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(DATABASE_URL=empty_database, REDIS_URL=redis_url, SERVICE_TOKENS=TOKENS, SWEEP_INTERVAL_SECONDS="0")
    script = target / "bin" / "astrowellness-data"

    where = subprocess.run([str(target / "bin" / "python"), "-c",
                            "import service, service.settings as s; print(service.__file__); "
                            "print(s.CONFIG_DIR / 'defaults.toml')"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert where[0].startswith(str(target)), where
    assert where[1].startswith(str(target)) and Path(where[1]).is_file(), where

    migrate = subprocess.run([str(script), "migrate"], cwd=elsewhere, env=env, capture_output=True, text=True,
                             timeout=180)
    assert migrate.returncode == 0, migrate.stderr
    on_disk = len([p for p in (ROOT / "migrations").glob("*.sql") if not p.name.endswith(".rollback.sql")])
    assert migrate.stdout.startswith(f"applied {on_disk} migration(s)"), migrate.stdout
    status = subprocess.run([str(script), "migrate", "status"], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0 and "no drift; 0 pending" in status.stdout, status.stdout + status.stderr

    port = free_port()
    process = subprocess.Popen([str(script), "serve", "--port", str(port)], cwd=elsewhere, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_healthy(base, process)
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/v1/users", json={"email": "wheel@example.com"},
                                 headers={"Authorization": "Bearer deploy-write"}) as r:
                assert r.status == 201, await r.text()
            async with http.get(base + "/v1/users", headers={"Authorization": "Bearer deploy-read"}) as r:
                assert r.status == 200
                assert [u["email"] for u in (await r.json())["data"]] == ["wheel@example.com"]
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()
