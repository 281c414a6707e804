"""Describe a database schema as a set of plain lines, so two schemas can be compared.

`migrate adopt` compares the live database with what the seed migrations create, and the tests compare
a migrated database with one built from Prisma's own DDL. Each line is one fact ("column users.email
text NOT NULL"); the difference of two sets is the list of what does not match.
"""

from __future__ import annotations

import asyncpg

from .queries import Q

SEED_TABLES = (
    "users",
    "accounts",
    "sessions",
    "verification_tokens",
    "subscriptions",
    "natal_data",
    "chart_cache",
)
SEED_ENUMS = ("Role", "SubscriptionStatus", "ChartType")


async def describe_schema(
    conn: asyncpg.Connection,
    schema: str,
    tables: tuple[str, ...] | None = None,
    enums: tuple[str, ...] | None = None,
    with_triggers: bool = False,
) -> set[str]:
    """Facts about `schema`, limited to `tables` / `enums` when given. Runs in a transaction."""
    facts: set[str] = set()

    def wanted(table: str) -> bool:
        return tables is None or table in tables

    async with conn.transaction():
        # Unqualified names in format_type / pg_get_constraintdef, whatever schema is described.
        await conn.execute(f"SET LOCAL search_path TO {_quote_ident(schema)}")
        for row in await conn.fetch(Q.catalog_tables, schema):
            if wanted(row["name"]):
                facts.add(f"table {row['name']}")
        for row in await conn.fetch(Q.catalog_enums, schema):
            if enums is None or row["name"] in enums:
                facts.add(f"enum {row['name']} ({', '.join(row['labels'])})")
        for row in await conn.fetch(Q.catalog_columns, schema):
            if wanted(row["table_name"]):
                line = f"column {row['table_name']}.{row['column_name']} {row['data_type']}"
                if row["not_null"]:
                    line += " NOT NULL"
                if row["default_expr"] is not None:
                    line += f" DEFAULT {row['default_expr']}"
                facts.add(line)
        for row in await conn.fetch(Q.catalog_constraints, schema):
            if wanted(row["table_name"]):
                facts.add(f"constraint {row['table_name']}.{row['name']} {row['definition']}")
        for row in await conn.fetch(Q.catalog_indexes, schema):
            if wanted(row["table_name"]):
                kind = "UNIQUE INDEX" if row["is_unique"] else "INDEX"
                line = (
                    f"{kind.lower()} {row['table_name']}.{row['name']} "
                    f"USING {row['method']} ({', '.join(row['columns'])})"
                )
                if row["predicate"]:
                    line += f" WHERE {row['predicate']}"
                facts.add(line)
        if with_triggers:
            for row in await conn.fetch(Q.catalog_triggers, schema):
                if wanted(row["table_name"]):
                    facts.add(f"trigger {row['table_name']}.{row['name']} {row['definition']}")
    return facts


def describe_differences(expected: set[str], actual: set[str]) -> list[str]:
    """Human-readable lines: what the expected schema has that the database lacks, and the reverse."""
    lines = [f"  missing:    {fact}" for fact in sorted(expected - actual)]
    lines += [f"  unexpected: {fact}" for fact in sorted(actual - expected)]
    return lines


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
