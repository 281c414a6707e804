"""Astrowellness data service: owns the platform's PostgreSQL database and serves it over HTTP."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
CONFIG_DIR = PROJECT_ROOT / "config"
