"""The list query language of API.md (page, limit, sort, select, filters, cursor, count) -> safe SQL.

Identifiers in the SQL come only from a route's declared fields (a whitelist); every value a client
sends becomes a `$n` parameter. Anything not declared is a 400 naming the parameter.

    GET /v1/users?sort=-createdAt,email&select=id,email&role=eq.admin&createdAt=gte.2026-01-01T00:00:00Z
    GET /v1/users?name=not.is.null&email=ilike.*@example.com&limit=50&cursor=<nextCursor>&count=none
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import msgspec

from .problems import bad_request

RESERVED = ("page", "limit", "sort", "select", "cursor", "count")
OPERATORS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
             "like": "LIKE", "ilike": "ILIKE", "in": None, "is": None}
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
ESTIMATE_EXACT_BELOW = 1000  # count=estimated counts exactly when the planner expects fewer rows


@dataclass(frozen=True)
class Field:
    """A column a list may expose. kind: text, time, enum, bool, int, float."""

    name: str
    kind: str = "text"
    column: str = ""  # SQL identifier, quoted; defaults to the quoted name
    sql_type: str = "text"  # the parameter cast
    enum: tuple[str, ...] = ()
    nullable: bool = False
    filter: bool = True
    sort: bool = True

    @property
    def sql(self) -> str:
        return self.column or f'"{self.name}"'


def text(name, **kw):
    return Field(name, "text", sql_type="text", **kw)


def time(name, **kw):
    return Field(name, "time", sql_type="timestamp", **kw)


def enum(name, type_name: str, labels, **kw):
    return Field(name, "enum", sql_type=f'"{type_name}"', enum=tuple(labels), **kw)


def boolean(name, **kw):
    return Field(name, "bool", sql_type="boolean", **kw)


def integer(name, **kw):
    return Field(name, "int", sql_type="integer", **kw)


@dataclass(frozen=True)
class ListSpec:
    table: str  # quoted table name
    fields: tuple[Field, ...]
    default_sort: tuple[str, ...]
    fixed_where: tuple[str, ...] = ()  # conditions with $1.. placeholders for the route's own arguments
    key: str = "id"  # a unique field: the final tie-breaker of every order (keyset paging needs one)
    by_name: dict[str, Field] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        self.by_name.update({f.name: f for f in self.fields})
        assert self.key in self.by_name, "lists use a unique key as the final tie-breaker"


@dataclass
class ListQuery:
    sql: str
    args: list[Any]
    count_sql: str | None
    count_args: list[Any]
    count_mode: str
    page: int
    limit: int
    select: tuple[str, ...]
    sort: tuple[tuple[Field, bool], ...]  # (field, descending)
    cursor_mode: bool
    spec: ListSpec
    estimate_sql: str | None = None  # the rows a count would count, for EXPLAIN (count=estimated)


class _Args:
    """Collects parameters and hands out their $n placeholders."""

    def __init__(self, fixed: list[Any]):
        self.values = list(fixed)

    def add(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


# ---- parsing values by type ---------------------------------------------------------------------

def parse_value(f: Field, raw: str, param: str) -> Any:
    try:
        if f.kind == "time":
            value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
            value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            try:
                return value.astimezone(timezone.utc)  # 0001-01-01T00:00+14:00 has no UTC datetime
            except OverflowError:
                raise ValueError("is out of range") from None
        if f.kind == "enum":
            label = raw.strip().upper()
            if label not in f.enum:
                raise ValueError(f"must be one of {', '.join(f.enum)}")
            return label
        if f.kind == "bool":
            if raw.lower() not in ("true", "false"):
                raise ValueError("must be true or false")
            return raw.lower() == "true"
        if f.kind == "int":
            value = int(raw)
            if not -(2**31) <= value < 2**31:
                raise ValueError("is out of range")
            return value
        if len(raw) > 1000:
            raise ValueError("is too long")
        if "\x00" in raw:  # PostgreSQL text cannot hold NUL
            raise ValueError("must not contain NUL characters")
        raw.encode()  # lone surrogates: UnicodeEncodeError, a ValueError
        return raw
    except ValueError as exc:
        message = str(exc) if f.kind in ("enum", "bool") or "range" in str(exc) or "long" in str(exc) \
            or "NUL" in str(exc) else f"is not a valid {f.kind} value"
        raise bad_request(param, message) from None


def _condition(f: Field, raw: str, args: _Args, param: str) -> str:
    negate = raw.startswith("not.")
    if negate:
        raw = raw[4:]
    op, dot, value = raw.partition(".")
    if not dot or op not in OPERATORS:
        raise bad_request(param, f"expected op.value with op one of {', '.join(OPERATORS)} (optionally not.)")
    if op == "is":
        literal = {"null": "NULL", "true": "TRUE", "false": "FALSE"}.get(value.lower())
        if literal is None or (literal != "NULL" and f.kind != "bool"):
            raise bad_request(param, "is. takes null (or true/false on a boolean field)")
        sql = f"{f.sql} IS {literal}"
    elif op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise bad_request(param, "in. takes a list: in.(a,b,c)")
        items = [item.strip() for item in value[1:-1].split(",") if item.strip()]
        if not items or len(items) > 100:
            raise bad_request(param, "in. takes 1 to 100 values")
        sql = f"{f.sql} = ANY({args.add([parse_value(f, i, param) for i in items], f.sql_type + '[]')})"
    elif op in ("like", "ilike"):
        if f.kind != "text":
            raise bad_request(param, f"{op} works on text fields only")
        sql = f"{f.sql} {OPERATORS[op]} {args.add(parse_value(f, value, param).replace('*', '%'), 'text')}"
    else:
        sql = f"{f.sql} {OPERATORS[op]} {args.add(parse_value(f, value, param), f.sql_type)}"
    return f"NOT ({sql})" if negate else sql


# ---- the whole query ------------------------------------------------------------------------------

def _int_param(query, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(name, "must be an integer") from None
    if not low <= value <= high:
        raise bad_request(name, f"must be between {low} and {high}")
    return value


def _sort(spec: ListSpec, raw: str | None) -> tuple[tuple[Field, bool], ...]:
    items = [s.strip() for s in (raw.split(",") if raw is not None else spec.default_sort)]
    order = []
    for item in items:
        descending = item.startswith("-")
        name = item.lstrip("-+")
        f = spec.by_name.get(name)
        if f is None or not f.sort:
            raise bad_request("sort", f"cannot sort by {name!r}")
        if any(existing.name == name for existing, _ in order):
            raise bad_request("sort", f"{name!r} is named twice")
        order.append((f, descending))
    if not any(f.name == spec.key for f, _ in order):
        order.append((spec.by_name[spec.key], order[-1][1] if order else False))
    return tuple(order)


def _cursor_secret(spec: ListSpec, sort) -> str:
    key = spec.table + "|" + ",".join(("-" if d else "") + f.name for f, d in sort)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def encode_cursor(spec: ListSpec, sort, row: dict) -> str:
    values = [row[f.name] for f, _ in sort]
    payload = msgspec.json.encode([_cursor_secret(spec, sort), values])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def _decode_cursor(spec: ListSpec, sort, raw: str) -> list:
    try:
        payload = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        check, values = msgspec.json.decode(payload, type=tuple[str, list])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise bad_request("cursor", "is not a cursor this service gave out") from None
    if check != _cursor_secret(spec, sort) or len(values) != len(sort):
        raise bad_request("cursor", "belongs to another list or sort order")
    parsed = []
    for (f, _), value in zip(sort, values):
        if value is None or not isinstance(value, (str, int, float, bool)):
            raise bad_request("cursor", "is not a cursor this service gave out")
        parsed.append(parse_value(f, str(value).lower() if isinstance(value, bool) else str(value), "cursor"))
    return parsed


def _keyset(sort, values: list, args: _Args) -> str:
    """Rows after the cursor row in this order: (a, b, id) > (x, y, z) expanded for mixed directions."""
    if len({d for _, d in sort}) == 1:
        columns = ", ".join(f.sql for f, _ in sort)
        params = ", ".join(args.add(v, f.sql_type) for (f, _), v in zip(sort, values))
        return f"({columns}) {'<' if sort[0][1] else '>'} ({params})"
    placeholders = [args.add(v, f.sql_type) for (f, _), v in zip(sort, values)]
    branches = []
    for i, (f, descending) in enumerate(sort):
        equal = [f"{sort[j][0].sql} = {placeholders[j]}" for j in range(i)]
        branches.append("(" + " AND ".join(equal + [f"{f.sql} {'<' if descending else '>'} {placeholders[i]}"]) + ")")
    return "(" + " OR ".join(branches) + ")"


def build_list_query(spec: ListSpec, query, fixed_args: list[Any] = ()) -> ListQuery:
    """Parse a request's query string into the SQL of one page (and of its count)."""
    for name in query:
        if name not in RESERVED and name not in spec.by_name:
            raise bad_request(name, "is not a field of this list")
    limit = _int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    page = _int_param(query, "page", 1, 1, 1_000_000)
    count_mode = query.get("count", "exact")
    if count_mode not in ("exact", "estimated", "none"):
        raise bad_request("count", "must be exact, estimated or none")
    sort = _sort(spec, query.get("sort"))

    select_raw = query.get("select")
    if select_raw is None:
        select = tuple(f.name for f in spec.fields)
    else:
        select = tuple(s.strip() for s in select_raw.split(",") if s.strip())
        unknown = [s for s in select if s not in spec.by_name]
        if unknown or not select:
            raise bad_request("select", f"unknown field {unknown[0]!r}" if unknown else "names no field")

    args = _Args(list(fixed_args))
    where = list(spec.fixed_where)
    for name in dict.fromkeys(query):  # each name once: getall() below reads all of its values
        if name in RESERVED:
            continue
        f = spec.by_name[name]
        if not f.filter:
            raise bad_request(name, "cannot be filtered")
        for raw in query.getall(name):
            where.append(_condition(f, raw, args, name))
    filter_args = list(args.values)
    filter_sql = " AND ".join(where) or "TRUE"

    cursor_raw = query.get("cursor")
    cursor_mode = cursor_raw is not None
    page_where = filter_sql
    if cursor_mode:
        if "page" in query:
            raise bad_request("cursor", "use either page or cursor, not both")
        nullable = [f.name for f, _ in sort if f.nullable]
        if nullable:
            raise bad_request("cursor", f"cursor paging needs a sort on non-null fields, not {nullable[0]!r}")
        page_where = f"{filter_sql} AND {_keyset(sort, _decode_cursor(spec, sort, cursor_raw), args)}"

    # The sort fields are always read (the next cursor is made of them), and left out of the answer
    # unless selected.
    columns = list(dict.fromkeys([*select, *(f.name for f, _ in sort)]))
    order = ", ".join(f"{f.sql} {'DESC' if d else 'ASC'}{' NULLS LAST' if d else ' NULLS FIRST'}"
                      if f.nullable else f"{f.sql} {'DESC' if d else 'ASC'}" for f, d in sort)
    offset = 0 if cursor_mode else (page - 1) * limit
    sql = (f"SELECT {', '.join(spec.by_name[c].sql + ' AS ' + _quote(c) for c in columns)} "
           f"FROM {spec.table} WHERE {page_where} ORDER BY {order} "
           f"LIMIT {args.add(limit + 1, 'integer')} OFFSET {args.add(offset, 'integer')}")
    count_sql = estimate_sql = None
    if count_mode != "none":
        count_sql = f"SELECT count(*) FROM {spec.table} WHERE {filter_sql}"
        estimate_sql = f"SELECT 1 FROM {spec.table} WHERE {filter_sql}"
    return ListQuery(sql, args.values, count_sql, filter_args, count_mode, page, limit, select, sort,
                     cursor_mode, spec, estimate_sql)


def _quote(name: str) -> str:
    return '"' + name + '"'


async def run_list_query(conn, q: ListQuery, transform=None) -> dict:
    rows = await conn.fetch(q.sql, *q.args)
    has_next = len(rows) > q.limit
    rows = rows[: q.limit]
    data = [transform(dict(r)) if transform else dict(r) for r in rows]
    # no cursor to hand out when the sort has a nullable field: build_list_query refuses to follow it
    keyset = not any(f.nullable for f, _ in q.sort)
    next_cursor = encode_cursor(q.spec, q.sort, data[-1]) if has_next and data and keyset else None
    for item in data:
        for extra in [k for k in item if k not in q.select]:
            del item[extra]
    total = await _count(conn, q)
    return {
        "data": data,
        "pagination": {
            "page": q.page, "limit": q.limit, "total": total,
            "totalPages": math.ceil(total / q.limit) if total is not None else None,
            "hasNext": has_next, "hasPrev": q.cursor_mode or q.page > 1, "nextCursor": next_cursor,
        },
    }


async def _count(conn, q: ListQuery) -> int | None:
    if q.count_sql is None:
        return None
    if q.count_mode == "estimated":
        # The top node of the rows' own plan (as PostgREST does): under count(*) the child may be a
        # Gather of partial aggregates whose "Plan Rows" is the number of workers, not of rows.
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + q.estimate_sql, *q.count_args)
        plan = msgspec.json.decode(plan) if isinstance(plan, (str, bytes)) else plan
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        if estimate >= ESTIMATE_EXACT_BELOW:
            return estimate
    return await conn.fetchval(q.count_sql, *q.count_args)
