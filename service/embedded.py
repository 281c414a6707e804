"""An embedded PostgreSQL (the `pgserver` wheel) for development and demos when DATABASE_URL is unset.

Its data lives in `<data_dir>/pgdata` and survives restarts. It listens on a Unix socket only. It is
not for production: one machine, no replication, no backups, no tuning.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from . import PROJECT_ROOT
from .settings_validation import SettingsError


def import_pgserver():
    """pgserver imports platformdirs, which warns when XDG_RUNTIME_DIR is unset (containers, CI)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError:
            raise SettingsError("the embedded database needs the pgserver package "
                                "(pip install 'astrowellness-data[embedded]'), or set DATABASE_URL") from None
    return pgserver


def embedded_data_path(data_dir: str) -> Path:
    """DATA_DIR; a relative one is inside the project folder of a source checkout, else the current one."""
    path = Path(data_dir)
    if path.is_absolute():
        return path
    return (PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()) / path


def embedded_database_url(data_dir: str, database: str = "postgres") -> str:
    pgserver = import_pgserver()  # imported here: only the embedded mode needs it

    path = embedded_data_path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": the server stops when the last process using it exits.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(path / "pgdata", cleanup_mode="stop")
    return server.get_uri(database)


def resolve_database_url(settings) -> str:
    """DATABASE_URL, or in development only, the embedded database's URL (started if need be)."""
    if settings.database_url:
        return settings.database_url
    if settings.environment != "development":
        raise SettingsError(f"DATABASE_URL is required in {settings.environment} "
                            "(the embedded database is for development only)")
    return embedded_database_url(settings.data_dir)
