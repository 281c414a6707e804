"""An embedded PostgreSQL (the `pgserver` wheel) for development and demos when DATABASE_URL is unset.

Its data lives in `<data_dir>/pgdata` and survives restarts. It listens on a Unix socket only. It is
not for production: one machine, no replication, no backups, no tuning.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from . import PROJECT_ROOT


def import_pgserver():
    """pgserver imports platformdirs, which warns when XDG_RUNTIME_DIR is unset (containers, CI)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


def embedded_database_url(data_dir: str, database: str = "postgres") -> str:
    pgserver = import_pgserver()  # imported here: only the embedded mode needs it

    path = Path(data_dir)
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    path.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": the server stops when the last process using it exits.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(path / "pgdata", cleanup_mode="stop")
    return server.get_uri(database)


def resolve_database_url(settings) -> str:
    return settings.database_url or embedded_database_url(settings.data_dir)
