"""Every named statement in sql/ prepares against a migrated database: a typo fails here, not in production."""

import asyncpg
import pytest

from service.db import init_connection
from service.queries import Q, parse_sql_file


async def test_every_named_statement_prepares(migrated_database_url):
    conn = await asyncpg.connect(migrated_database_url)
    await init_connection(conn)
    try:
        assert len(Q) > 40
        for name, sql in Q.items():
            try:
                await conn.prepare(sql)
            except asyncpg.PostgresError as exc:
                pytest.fail(f"sql statement {name!r} does not prepare: {exc}")
    finally:
        await conn.close()


def test_the_loader_reads_names_and_refuses_duplicates():
    text = "-- preamble\n\n-- name: first\n-- a comment\nSELECT 1;\n\n-- name: second\nSELECT $1::int\n"
    assert parse_sql_file(text) == {"first": "SELECT 1", "second": "SELECT $1::int"}
    with pytest.raises(ValueError):
        parse_sql_file("-- name: x\nSELECT 1\n-- name: x\nSELECT 2\n")
