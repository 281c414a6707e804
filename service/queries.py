"""Named SQL statements, loaded once from sql/*.sql.

Each statement starts with a `-- name: <name>` line and uses `$n` parameters only. This is aiosql's
file format; we read it ourselves (a dozen lines) because the handlers call asyncpg directly with the
SQL text, which lets asyncpg's statement cache prepare each statement once per connection and keeps
aiosql's per-call wrapper off the hot path.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import SQL_DIR

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


class Queries(dict[str, str]):
    """name -> SQL text; attribute access (`Q.get_user_by_id`) reads nicer at call sites."""

    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no SQL statement named {name!r} in sql/") from None


def parse_sql_file(text: str, source: str = "<sql>") -> dict[str, str]:
    statements: dict[str, str] = {}
    parts = _NAME_LINE.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2]):
        sql = "\n".join(
            line for line in body.strip().splitlines() if not line.lstrip().startswith("--")
        ).strip().rstrip(";")
        if name in statements:
            raise ValueError(f"{source}: statement {name!r} is defined twice")
        statements[name] = sql
    return statements


def load_queries(sql_dir: Path = SQL_DIR) -> Queries:
    queries = Queries()
    for path in sorted(sql_dir.glob("*.sql")):
        for name, sql in parse_sql_file(path.read_text(), str(path)).items():
            if name in queries:
                raise ValueError(f"{path}: statement {name!r} is also defined in another file")
            queries[name] = sql
    return queries


Q = load_queries()
