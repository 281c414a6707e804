"""squawk lints every migration (rules that cannot apply to the seed's schema are off in .squawk.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def squawk(*args):
    exe = shutil.which("squawk") or str(Path(sys.executable).with_name("squawk"))
    return subprocess.run([exe, "-c", ".squawk.toml", "--reporter", "gcc", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_forward_migrations_are_clean():
    result = squawk("--exclude-path", "*.rollback.sql", "migrations/*.sql")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rollbacks_are_clean_apart_from_the_drops_they_exist_for():
    result = squawk("--exclude", "ban-drop-table,ban-drop-type,ban-drop-function,ban-drop-view", "migrations/*.rollback.sql")
    assert result.returncode == 0, result.stdout + result.stderr


def test_squawk_does_catch_a_bad_migration(tmp_path):
    bad = tmp_path / "9999_bad.sql"
    bad.write_text('ALTER TABLE "users" ADD COLUMN "x" TEXT NOT NULL;\nCREATE INDEX "i" ON "users"("x");\n')
    result = squawk(str(bad))
    assert result.returncode != 0
