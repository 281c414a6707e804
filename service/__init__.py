"""Astrowellness data service: owns the platform's PostgreSQL database and serves it over HTTP."""

from importlib.resources import files
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A source checkout (or an editable install of one) has pyproject.toml next to the package.
IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").exists()


def _project_folder(name: str) -> Path:
    """sql/, migrations/ or config/: the checkout's own folder, or the copy shipped in the wheel."""
    if IN_CHECKOUT and (PROJECT_ROOT / name).is_dir():
        return PROJECT_ROOT / name
    bundled = files(__name__).joinpath("_bundled", name)
    if not bundled.is_dir():
        raise RuntimeError(f"this installation of the service has no {name}/ folder; reinstall it from a "
                           "wheel built by `pip wheel .` (setup.py bundles it)")
    return Path(str(bundled))


SQL_DIR = _project_folder("sql")
MIGRATIONS_DIR = _project_folder("migrations")
CONFIG_DIR = _project_folder("config")
