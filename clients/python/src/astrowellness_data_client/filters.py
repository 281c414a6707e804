"""List filters (API.md § Lists): `field=op.value`, built from Python values.

    client.users.iter(filter={"role": "ADMIN",                        # eq
                              "createdAt": [gte(since), lt(until)],   # both
                              "email": ilike("*@example.com"),
                              "name": not_(is_null())})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class Op:
    """One condition on a field: the operator and its value as the service reads it."""

    op: str
    value: str
    negated: bool = False

    def render(self) -> str:
        return f"{'not.' if self.negated else ''}{self.op}.{self.value}"


def render_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("filter times need a time zone (the service stores UTC)")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _op(name: str):
    def make(value: Any) -> Op:
        return Op(name, render_value(value))
    make.__name__ = name
    return make


eq, neq, gt, gte, lt, lte = (_op(n) for n in ("eq", "neq", "gt", "gte", "lt", "lte"))


def like(pattern: str) -> Op:
    """`*` is the wildcard."""
    return Op("like", pattern)


def ilike(pattern: str) -> Op:
    """Case-insensitive like; `*` is the wildcard."""
    return Op("ilike", pattern)


def in_(values: Iterable[Any]) -> Op:
    items = [render_value(v) for v in values]
    if not items:
        raise ValueError("in_() needs at least one value")
    return Op("in", f"({','.join(items)})")


def is_null() -> Op:
    return Op("is", "null")


def is_(value: bool | None) -> Op:
    return Op("is", "null" if value is None else render_value(value))


def not_(condition: Op) -> Op:
    return Op(condition.op, condition.value, not condition.negated)


FilterValue = Any  # an Op, a list of Ops, None (is.null) or a plain value (eq)


def filter_params(filters: Mapping[str, FilterValue] | None) -> list[tuple[str, str]]:
    """Query pairs for a filter mapping; a field may repeat (a list of conditions, all must hold)."""
    pairs: list[tuple[str, str]] = []
    for field, value in (filters or {}).items():
        conditions = value if isinstance(value, (list, tuple)) else [value]
        for condition in conditions:
            if condition is None:
                condition = is_null()
            elif not isinstance(condition, Op):
                condition = eq(condition)
            pairs.append((field, condition.render()))
    return pairs


def list_params(*, filter: Mapping[str, FilterValue] | None = None, sort: str | Iterable[str] | None = None,
                select: Iterable[str] | None = None, limit: int | None = None, page: int | None = None,
                cursor: str | None = None, count: str | None = None) -> list[tuple[str, str]]:
    pairs = filter_params(filter)
    if sort is not None:
        pairs.append(("sort", sort if isinstance(sort, str) else ",".join(sort)))
    if select is not None:
        pairs.append(("select", ",".join(select)))
    for name, value in (("limit", limit), ("page", page), ("cursor", cursor), ("count", count)):
        if value is not None:
            pairs.append((name, str(value)))
    return pairs
