"""The list query language of API.md (page, limit, sort, select, filters, cursor, count) -> safe SQL.

Identifiers in the SQL come only from a route's declared fields (a whitelist); every value a client
sends becomes a `$n` parameter. Anything not declared is a 400 naming the parameter.

    GET /v1/users?sort=-createdAt,email&select=id,email&role=eq.admin&createdAt=gte.2026-01-01T00:00:00Z
    GET /v1/users?email=ilike.*@example.com&limit=50&cursor=<nextCursor>&count=none

What a request may cost (API.md § What a list request may cost, ListLimits): counts stop at a cap
(count=auto; a lower one for searches), offsets at page x limit, and a filter or sort that no index serves is
answered only when the index-backed conditions leave at most count_cap rows (the row budget; for searches,
search_count_cap).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import time as clock
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from .db import planned_rows
from .problems import Problem, bad_request

RESERVED = ("page", "limit", "sort", "select", "cursor", "count")
# Columns of ListQuery.few_sql (no field has a colon): a search's matches, and the rows fetched to find them
MATCHES, FETCHED = "matches:count", "matches:fetched"
OPERATORS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
             "like": "LIKE", "ilike": "ILIKE", "in": None, "is": None}
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
ESTIMATE_EXACT_BELOW = 1000  # count=estimated counts exactly when the planner expects fewer rows
COUNT_MODES = ("auto", "exact", "estimated", "none")
TRIGRAM_RUN = 3  # pg_trgm finds rows by 3-character pieces: a shorter literal run cannot use the index
# When the planner expects more than this many times the cap rows, its figure is used without counting
# (one EXPLAIN, well under a millisecond). For a substring search (through a trigram index) the planner's
# word is taken as soon as it expects more than search_count_cap: counting even one row more first builds
# the bitmap of every match (at 1M users: 9-38 ms to decode the posting lists of "greta berg", then 13-30
# ms to recheck its 6,250 rows; bench/RESULTS.md).
TRUST_ESTIMATE_ABOVE_CAP = 10


@dataclass(frozen=True)
class ListLimits:
    """What one list request may cost (settings `list_*`); the defaults are the documented ones."""

    count_cap: int = 10_000  # count=auto counts exactly up to here, then asks the planner
    # The same for a request with a like/ilike filter, and its row budget: a search that matches more
    # rows than this is answered with the planner's estimate, and refuses unindexed sorts/filters.
    search_count_cap: int = 1_000
    count_cache_seconds: float = 5.0  # a filter's total is reused this long (count=auto)
    max_offset_rows: int = 10_000  # page x limit; deeper pages go by cursor
    max_filters: int = 10
    max_pattern_length: int = 100
    expensive_timeout_ms: int = 2_000  # statement_timeout for pattern filters and exact counts


DEFAULT_LIMITS = ListLimits()


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
    # A btree index of the list's table leads with this column: sorting by it and eq/in/range filters on
    # it are index scans at any size. Anything else must stay within the row budget (build_list_query).
    indexed: bool = False
    # A nullable field sorts ASC NULLS FIRST / DESC NULLS LAST (so that a page never ends on NULLs
    # unexpectedly); a default btree (NULLS LAST) cannot give that order, only one built NULLS FIRST.
    nulls_first_index: bool = False
    # The index leads with this column but continues with others ((role, "createdAt", id)): it serves
    # filters, yet a sort by this field (tie-broken by the key) is not its order, so such a sort stays
    # within the row budget.
    index_gives_sort: bool = True

    @property
    def sort_indexed(self) -> bool:
        return self.indexed and self.index_gives_sort and (not self.nullable or self.nulls_first_index)
    # like/ilike is served by a pg_trgm GIN index (gin_trgm_ops) on this column.
    trigram: bool = False
    # A btree on lower(column) text_pattern_ops: an ilike pattern that starts with a literal prefix is
    # searched as lower(column) LIKE lower(pattern), an index range (see _condition).
    lower_prefix_index: bool = False

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
    # The fixed conditions alone keep the list small (one user's accounts): no row budget to check.
    bounded: bool = False
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
    limits: ListLimits = DEFAULT_LIMITS
    # Set when part of the request is not index-backed: the capped count over the index-backed
    # conditions alone must stay within limits.count_cap, else the request is refused (a 400 on `budget_param`).
    budget_sql: str | None = None
    budget_estimate_sql: str | None = None
    budget_args: list[Any] = field(default_factory=list)
    budget_param: str = ""
    budget_reason: str = ""
    budget_cap: int = DEFAULT_LIMITS.count_cap  # the rows the index-backed conditions may leave
    expensive: bool = False  # runs under limits.expensive_timeout_ms
    search: bool = False  # has a like/ilike filter: count=auto and the row budget stop at search_count_cap
    trigram: bool = False  # one of its conditions is found through a trigram index (see _trust_above)
    count_cap: int = DEFAULT_LIMITS.count_cap  # count=auto's cap for this request
    offset: int = 0
    # A search's page and its matches' count from its matches alone (args: `args`; see build_list_query)
    few_sql: str | None = None
    few_superset: bool = False  # few_sql fetches a superset of the matches (then rechecks them)
    few_trigram: bool = False  # few_sql finds its matches through a trigram index


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
            value = value if value.tzinfo else value.replace(tzinfo=UTC)
            try:
                return value.astimezone(UTC)  # 0001-01-01T00:00+14:00 has no UTC datetime
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


def _longest_literal_run(pattern: str) -> int:
    """The longest stretch of a like pattern without a wildcard (* or _) in it."""
    return max((len(run) for run in re.split(r"[*_%]", pattern)), default=0)


def _literal_prefix(sql_pattern: str) -> str:
    """What every match of a LIKE pattern starts with: the text before its first wildcard (% or _) or
    escape character (a backslash)."""
    return re.split(r"[%_\\]", sql_pattern, maxsplit=1)[0]


@dataclass(frozen=True)
class _Condition:
    sql: str
    index: str | None  # the kind of index that serves it: "btree", "trigram" or None
    # A case-sensitive like with a lowercase ASCII pattern: lower(column) LIKE pattern, a superset of its
    # rows that the lower(...) btree reads as a range. Only the few-matches query of a search uses it, and
    # rechecks `sql` on what it found (build_list_query).
    superset: str | None = None


def _lowercase_ascii(sql_pattern: str) -> bool:
    """A pattern whose every match, lowered, still matches it: lowercase ASCII, no _ (one character may
    lower to two) and no escapes. lower() leaves lowercase ASCII letters, digits and punctuation alone in
    every locale; only uppercase letters (I in Turkish, final sigma...) lower differently by context."""
    return sql_pattern.isascii() and sql_pattern == sql_pattern.lower() and not re.search(r"[_\\]", sql_pattern)


def _condition(f: Field, raw: str, args: _Args, param: str, limits: ListLimits) -> _Condition:
    """One filter as SQL, and what serves it (see Field.indexed, Field.trigram, Field.lower_prefix_index)."""
    negate = raw.startswith("not.")
    if negate:
        raw = raw[4:]
    op, dot, value = raw.partition(".")
    if not dot or op not in OPERATORS:
        raise bad_request(param, f"expected op.value with op one of {', '.join(OPERATORS)} (optionally not.)")
    served = "btree" if f.indexed else None
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
        if len(value) > limits.max_pattern_length:
            raise bad_request(param, f"a {op} pattern may be at most {limits.max_pattern_length} characters long")
        pattern = parse_value(f, value, param)
        # pg_trgm extracts 3-character pieces; with fewer literal characters in a row it scans the index.
        served = "trigram" if f.trigram and _longest_literal_run(pattern) >= TRIGRAM_RUN else None
        sql_pattern = pattern.replace("*", "%")
        prefix = _literal_prefix(sql_pattern)
        # "abc*": a prefix search. (With more after the prefix — "ann*meyer12345*" — the trigrams of the
        # rest may find far fewer rows than the prefix's range does: such a pattern stays a trigram search.)
        prefix_search = len(prefix) >= TRIGRAM_RUN and not sql_pattern[len(prefix):].strip("%")
        if op == "ilike" and f.lower_prefix_index and prefix_search:
            # In a multibyte (UTF8) database ILIKE *is* lower(text) LIKE lower(pattern) (PostgreSQL's like.c
            # lowers both sides): the same rows, and with a literal prefix a range of the lower(...) btree.
            # Through the trigram index a prefix decodes the posting lists of all its trigrams and rechecks
            # every candidate row. (A case-sensitive like keeps its own condition, found through the trigram
            # index: adding a redundant lower(...) range to it would make the planner multiply two
            # selectivities of one condition and underestimate common prefixes a hundredfold. Only the
            # few-matches query reads such a like through the range: see _Condition.superset.)
            sql = f"lower({f.sql}) LIKE lower({args.add(sql_pattern, 'text')})"
            served = "btree"
        else:
            placeholder = args.add(sql_pattern, "text")
            sql = f"{f.sql} {OPERATORS[op]} {placeholder}"
            if op == "like" and f.lower_prefix_index and prefix_search and _lowercase_ascii(sql_pattern) and not negate:
                return _Condition(sql, served, superset=f"lower({f.sql}) LIKE {placeholder}")
    else:
        served = "btree" if served and op != "neq" else None
        sql = f"{f.sql} {OPERATORS[op]} {args.add(parse_value(f, value, param), f.sql_type)}"
    return _Condition(f"NOT ({sql})", None) if negate else _Condition(sql, served)


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
    # The OR cannot bound an index scan; this redundant range on the first sort field can, so a deep
    # cursor starts where the previous page ended instead of walking (and filtering) every row before it.
    first, first_descending = sort[0]
    start = f"{first.sql} {'<=' if first_descending else '>='} {placeholders[0]}"
    return f"{start} AND (" + " OR ".join(branches) + ")"


def build_list_query(spec: ListSpec, query, fixed_args: list[Any] = (),
                     limits: ListLimits = DEFAULT_LIMITS) -> ListQuery:
    """Parse a request's query string into the SQL of one page (and of its count)."""
    for name in query:
        if name not in RESERVED and name not in spec.by_name:
            raise bad_request(name, "is not a field of this list")
    limit = _int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    page = _int_param(query, "page", 1, 1, 1_000_000)
    if page > 1 and page * limit > limits.max_offset_rows:
        raise bad_request("page", f"page x limit may be at most {limits.max_offset_rows} rows; for deeper pages "
                                  "follow pagination.nextCursor with cursor=")
    count_mode = query.get("count", "auto")
    if count_mode not in COUNT_MODES:
        raise bad_request("count", "must be auto, exact, estimated or none")
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
    served_where = list(spec.fixed_where)
    unserved: list[tuple[str, str]] = []  # (parameter, why) of the conditions no index serves
    patterns = filters = 0
    trigram = False  # a condition found through a trigram index (its count and budget: _trust_above)
    few_trigram = False  # ... and one that the few-matches query cannot read as a btree range instead
    access: list[str] = list(spec.fixed_where)  # the few-matches query's conditions (supersets for some)
    recheck: list[str] = []  # the exact conditions of those supersets, checked on what they found
    recheck_fields: list[str] = []
    for name in dict.fromkeys(query):  # each name once: getall() below reads all of its values
        if name in RESERVED:
            continue
        f = spec.by_name[name]
        if not f.filter:
            raise bad_request(name, "cannot be filtered")
        for raw in query.getall(name):
            filters += 1
            if filters > limits.max_filters:
                raise bad_request(name, f"a list takes at most {limits.max_filters} filters")
            condition = _condition(f, raw, args, name, limits)
            sql, index = condition.sql, condition.index
            where.append(sql)
            is_pattern = raw.removeprefix("not.").partition(".")[0] in ("like", "ilike")
            patterns += is_pattern
            trigram = trigram or index == "trigram"
            few_trigram = few_trigram or (index == "trigram" and condition.superset is None)
            if condition.superset is None:
                access.append(sql)
            else:
                access.append(condition.superset)
                recheck.append(sql)
                recheck_fields.append(f.name)
            if index:
                served_where.append(sql)
            else:
                why = ("a search needs 3 characters in a row without wildcards" if is_pattern and f.trigram
                       else f"no index serves this filter on {name!r}")
                unserved.append((name, why))
    filter_args = list(args.values)
    filter_sql = " AND ".join(where) or "TRUE"

    leading = sort[0][0]
    if not leading.sort_indexed:
        unserved.append(("sort", f"no index serves a sort by {leading.name!r}"))
    search = patterns > 0
    cap = min(limits.search_count_cap, limits.count_cap) if search else limits.count_cap
    budget_sql = budget_estimate_sql = None
    budget_param = budget_reason = ""
    if unserved and not spec.bounded:
        budget_param, budget_reason = unserved[0]
        served_sql, budget_args = _renumber(" AND ".join(served_where) or "TRUE", filter_args)
        budget_sql = _capped_count_sql(spec.table, served_sql, cap)
        budget_estimate_sql = f"SELECT 1 FROM {spec.table} WHERE {served_sql}"
    else:
        budget_args = []

    cursor_raw = query.get("cursor")
    cursor_mode = cursor_raw is not None
    page_where = filter_sql
    keyset_sql = "TRUE"
    if cursor_mode:
        if "page" in query:
            raise bad_request("cursor", "use either page or cursor, not both")
        nullable = [f.name for f, _ in sort if f.nullable]
        if nullable:
            raise bad_request("cursor", f"cursor paging needs a sort on non-null fields, not {nullable[0]!r}")
        keyset_sql = _keyset(sort, _decode_cursor(spec, sort, cursor_raw), args)
        page_where = f"{filter_sql} AND {keyset_sql}"

    # The sort fields are always read (the next cursor is made of them), and left out of the answer
    # unless selected.
    columns = list(dict.fromkeys([*select, *(f.name for f, _ in sort)]))
    order = ", ".join(f"{f.sql} {'DESC' if d else 'ASC'}{' NULLS LAST' if d else ' NULLS FIRST'}"
                      if f.nullable else f"{f.sql} {'DESC' if d else 'ASC'}" for f, d in sort)
    offset = 0 if cursor_mode else (page - 1) * limit
    selected = ", ".join(spec.by_name[c].sql + " AS " + _quote(c) for c in columns)
    page_limit = f"LIMIT {args.add(limit + 1, 'integer')} OFFSET {args.add(offset, 'integer')}"
    if offset:
        # The rows skipped are found by their keys alone, then only the page's rows are read: where an
        # index holds the filters, the sort and the key (("createdAt", id)), the offset is an index-only
        # scan instead of a heap fetch per skipped row (page 1,000 of 10 users: 22 -> 2 ms at 1M users).
        key = spec.by_name[spec.key].sql
        sql = (f"SELECT {selected} FROM {spec.table} WHERE {key} IN "
               f"(SELECT {key} FROM {spec.table} WHERE {page_where} ORDER BY {order} {page_limit}) "
               f"ORDER BY {order}")
    else:
        sql = f"SELECT {selected} FROM {spec.table} WHERE {page_where} ORDER BY {order} {page_limit}"
    few_sql = None
    if search:
        # A search the planner expects to match at most the cap (10 x the cap when no trigram index is
        # involved: a btree range is cheap to cut short) is answered from its matches alone: fetched (the
        # bitmap of a trigram search, the range of a prefix), sorted for the page and counted, in one
        # statement. Left to itself the planner may walk the sort's index and test each row instead, as it
        # prices a row of that walk far below what reading it and testing a pattern cost: 20,000 rows and
        # 40 ms for a prefix 694 of 1M users have, whose matches take 1.5 ms. Past the cap the matches are
        # cut short, and the page comes from the usual query (_run). With a superset (_Condition.superset)
        # the matches are fetched by it and its exact condition is checked on them, so the fields that
        # condition tests are fetched too.
        fetched = ", ".join(spec.by_name[c].sql + " AS " + _quote(c)
                            for c in dict.fromkeys([*columns, *recheck_fields]))
        exact = " AND ".join(recheck) or "TRUE"
        few_sql = (f"WITH matches AS MATERIALIZED (SELECT {fetched} FROM {spec.table} WHERE "
                   f"{' AND '.join(access) or 'TRUE'} LIMIT {cap + 1}) "
                   f"SELECT *, (SELECT count(*) FROM matches WHERE {exact}) AS {_quote(MATCHES)}, "
                   f"(SELECT count(*) FROM matches) AS {_quote(FETCHED)} "
                   f"FROM matches WHERE {exact} AND {keyset_sql} ORDER BY {order} {page_limit}")
    count_sql = None
    estimate_sql = f"SELECT 1 FROM {spec.table} WHERE {filter_sql}"
    if count_mode == "auto":
        count_sql = _capped_count_sql(spec.table, filter_sql, cap)
    elif count_mode != "none":
        count_sql = f"SELECT count(*) FROM {spec.table} WHERE {filter_sql}"
    return ListQuery(sql, args.values, count_sql, filter_args, count_mode, page, limit, select, sort,
                     cursor_mode, spec, estimate_sql, limits, budget_sql=budget_sql,
                     budget_estimate_sql=budget_estimate_sql, budget_args=budget_args, budget_param=budget_param,
                     budget_reason=budget_reason, budget_cap=cap, expensive=search or count_mode == "exact",
                     search=search, trigram=trigram, count_cap=cap, offset=offset, few_sql=few_sql,
                     few_superset=bool(recheck), few_trigram=few_trigram)


def _capped_count_sql(table: str, where: str, cap: int) -> str:
    """count(*) that stops after cap + 1 rows: what a count costs is bounded however big the table."""
    return f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT {cap + 1}) AS capped"


_PLACEHOLDER = re.compile(r"\$(\d+)\b")  # values are never inline: every $n is a parameter


def _renumber(sql: str, values: list) -> tuple[str, list]:
    """Keep only the parameters `sql` uses, numbered $1.. again (PostgreSQL needs each one's type)."""
    used = sorted({int(n) for n in _PLACEHOLDER.findall(sql)})
    number = {old: new for new, old in enumerate(used, 1)}
    return _PLACEHOLDER.sub(lambda m: f"${number[int(m.group(1))]}", sql), [values[i - 1] for i in used]


def _quote(name: str) -> str:
    return '"' + name + '"'


class CountCache:
    """Totals of recent filters, kept `seconds` (count=auto): paging through a big filtered list counts
    once, not once per page. Per process and per database pool; a few seconds stale at most."""

    def __init__(self, max_entries: int = 1024):
        self.max_entries = max_entries
        self._entries: dict[tuple, tuple[float, Any]] = {}

    def get(self, key: tuple):
        hit = self._entries.get(key)
        if hit is None or hit[0] < clock.monotonic():
            return None
        return hit[1]

    def put(self, key: tuple, value: Any, seconds: float) -> None:
        if seconds <= 0:
            return
        if len(self._entries) >= self.max_entries:
            now = clock.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (clock.monotonic() + seconds, value)


class ListTimeout(Problem):
    """An expensive list query ran past limits.expensive_timeout_ms: a 503 saying what to change."""

    def __init__(self, limits: ListLimits, retry_after: int):
        super().__init__(503, f"this list query took longer than {limits.expensive_timeout_ms} ms; narrow it "
                              "with an indexed filter, use count=auto or count=none, or page by cursor",
                         headers={"Retry-After": str(retry_after)})


async def run_list_query(conn, q: ListQuery, transform=None, counts: CountCache | None = None,
                         retry_after: int = 5) -> dict:
    """One page (and its count) on `conn`; expensive requests run under a shorter statement timeout."""
    if not q.expensive:
        return await _run(conn, q, transform, counts)
    try:
        async with conn.transaction(readonly=True):
            # Custom plans only: a search's plan depends on its pattern (a rare one is a bitmap of its
            # matches, a common one walks the sort's index, an ilike prefix is a btree range), and a
            # generic plan made for any pattern would be one of these for all of them.
            await conn.execute(f"SET LOCAL statement_timeout = {int(q.limits.expensive_timeout_ms)}; "
                               "SET LOCAL plan_cache_mode = force_custom_plan")
            return await _run(conn, q, transform, counts)
    except asyncpg.QueryCanceledError:
        raise ListTimeout(q.limits, retry_after) from None


async def _run(conn, q: ListQuery, transform, counts: CountCache | None) -> dict:
    if q.budget_sql is not None:
        async def rows_left():
            planned = await planned_rows(conn, q.budget_estimate_sql, q.budget_args)
            if planned > q.budget_cap * _trust_above(q):
                return q.budget_cap + 1  # clearly over: refused without counting
            return await conn.fetchval(q.budget_sql, *q.budget_args)

        within = await _cached(counts, ("budget", q.budget_sql, repr(q.budget_args)), q.limits, rows_left)
        if within > q.budget_cap:
            what = "the search and the indexed filters leave" if q.search else "the indexed filters leave"
            raise bad_request(q.budget_param, f"needs another filter: {q.budget_reason}, and {what} "
                                              f"more than {q.budget_cap} rows")
    expected = matches = None
    over = False  # the search matched more than the cap (its matches were cut short)
    if q.few_sql is not None:
        expected = await planned_rows(conn, q.estimate_sql, q.count_args)
        if expected <= q.count_cap * (1 if q.few_trigram else TRUST_ESTIMATE_ABOVE_CAP):
            rows = await conn.fetch(q.few_sql, *q.args)
            # Cut short (more rows fetched than the cap: some matches may be missing), or an empty page
            # (the counts came with no row): the page as usual. Without a superset, cut short means more
            # matches than the cap.
            cut_short = bool(rows) and rows[0][FETCHED] > q.count_cap
            matches = rows[0][MATCHES] if rows and not cut_short else None
            over = cut_short and not q.few_superset
    if matches is None:
        rows = await conn.fetch(q.sql, *q.args)
    has_next = len(rows) > q.limit
    rows = rows[: q.limit]
    # The last page of an offset walk (its rows, or page 1 without any) gives the exact total for free:
    # the rows skipped plus the rows here. No count to run, whatever the mode.
    seen = None if has_next or q.cursor_mode or (not rows and q.offset) else q.offset + len(rows)
    seen = matches if matches is not None else seen
    data = [dict(r) for r in rows]
    if matches is not None:
        for item in data:
            del item[MATCHES], item[FETCHED]
    data = [transform(item) for item in data] if transform else data
    # no cursor to hand out when the sort has a nullable field: build_list_query refuses to follow it
    keyset = not any(f.nullable for f, _ in q.sort)
    next_cursor = encode_cursor(q.spec, q.sort, data[-1]) if has_next and data and keyset else None
    for item in data:
        for extra in [k for k in item if k not in q.select]:
            del item[extra]
    if q.count_sql is None:
        total, estimated = None, False
    elif seen is not None:
        total, estimated = seen, False
    elif over and q.count_mode == "auto":
        total, estimated = max(expected, q.count_cap + 1), True
    else:
        total, estimated = await _count(conn, q, counts, expected)
    return {
        "data": data,
        "pagination": {
            "page": q.page, "limit": q.limit, "total": total,
            "totalPages": math.ceil(total / q.limit) if total is not None else None,
            "hasNext": has_next, "hasPrev": q.cursor_mode or q.page > 1, "nextCursor": next_cursor,
            "totalIsEstimate": estimated,
        },
    }


async def _cached(counts: CountCache | None, key: tuple, limits: ListLimits, load):
    value = counts.get(key) if counts is not None else None
    if value is None:
        value = await load()
        if counts is not None:
            counts.put(key, value, limits.count_cache_seconds)
    return value


async def _estimate(conn, q: ListQuery, expected: int | None = None) -> int:
    return expected if expected is not None else await planned_rows(conn, q.estimate_sql, q.count_args)


def _trust_above(q: ListQuery) -> int:
    """How many times its cap a request's rows must be expected to be to take the planner's word: counting
    through a trigram index costs the bitmap of every match, so there the word is taken above the cap."""
    return 1 if q.trigram else TRUST_ESTIMATE_ABOVE_CAP


async def _count(conn, q: ListQuery, counts: CountCache | None,
                 expected: int | None = None) -> tuple[int | None, bool]:
    """(total, whether it is the planner's estimate); `expected`: the planner's figure if already asked."""
    if q.count_sql is None:
        return None, False
    if q.count_mode == "auto":
        async def load():
            estimate = await _estimate(conn, q, expected)
            if estimate > q.count_cap * _trust_above(q):
                return estimate, True
            capped = await conn.fetchval(q.count_sql, *q.count_args)
            if capped <= q.count_cap:
                return capped, False
            # More than the cap: the planner's figure, never below what was just counted.
            return max(estimate, capped), True

        total, estimated = await _cached(counts, ("count", q.count_sql, repr(q.count_args)), q.limits, load)
        return total, estimated
    if q.count_mode == "estimated":
        estimate = await _estimate(conn, q, expected)
        if estimate >= ESTIMATE_EXACT_BELOW:
            return estimate, True
    return await conn.fetchval(q.count_sql, *q.count_args), False
