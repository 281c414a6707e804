"""build_list_query without a database: property-based tests that no query string gets into the SQL text
and that bad input is only ever a 400 Problem naming one of the request's parameters."""

from __future__ import annotations

import base64
import re
from datetime import datetime

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from service.db import encode_timestamp
from service.listing import (
    DEFAULT_LIMITS,
    FETCHED,
    MATCHES,
    RESERVED,
    ListQuery,
    _cursor_secret,
    build_list_query,
    encode_cursor,
)
from service.problems import Problem
from service.routes.lists import ACCOUNTS, CHARTS, SUBSCRIPTIONS, USERS

SPECS = {"users": (USERS, []), "accounts": (ACCOUNTS, ["user-1"]), "charts": (CHARTS, []),
         "subscriptions": (SUBSCRIPTIONS, [])}

INJECTIONS = [
    "'; DROP TABLE users; --", '") OR 1=1 --', "' OR '1'='1", "1; SELECT pg_sleep(10)--", "1/*", "*/",
    '"users"', '"; DELETE FROM "users', "email\" DESC; --", "$1", "$2::text", "$$ x $$", "E'\\x00'", "\\",
    "%", "_", "ünïcødé", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\u202eevil", "ﬁ", "İ", "ß", "\x00", "\n", "\t", "id\x00", "e\u0301",
    "NULL", "null", "true", "TRUE", "(", ")", "()", ",", ".", "..", "not.", "eq.", "in.(", "-", "+", "*",
    "2026-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30",
    "-1", "0", "101", "2147483648", "99999999999999999999", "1e999", "NaN", "0x10", "١٢", " 5 ",
]
FIELD_NAMES = sorted({f.name for spec, _ in SPECS.values() for f in spec.fields})
OPS = ["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "in", "is", "zz", "", "EQ", "not", "not.not.eq"]

text = st.text(max_size=15)
piece = st.one_of(st.sampled_from(INJECTIONS), st.sampled_from(FIELD_NAMES), text,
                  st.integers(-(2**40), 2**40).map(str), st.sampled_from(["ADMIN", "user", "active", "tropical"]))


def _cursor(values):
    """Cursors as this service makes them, but carrying arbitrary values and secrets."""
    return st.builds(lambda check, vals: base64.urlsafe_b64encode(msgspec.json.encode([check, vals])).decode()
                     .rstrip("="), st.one_of(st.sampled_from(["", "x"]), text), st.lists(values, max_size=4))


json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), piece)
filter_value = st.one_of(
    piece,
    st.builds(lambda neg, op, v: ("not." if neg else "") + f"{op}.{v}", st.booleans(), st.sampled_from(OPS), piece),
    st.builds(lambda neg, vs: ("not." if neg else "") + f"in.({','.join(vs)})", st.booleans(),
              st.lists(piece, max_size=5)),
)
sort_value = st.lists(st.builds(lambda d, f: d + f, st.sampled_from(["", "-", "+", "--", " "]),
                                st.one_of(st.sampled_from(FIELD_NAMES), piece)), max_size=5).map(",".join)
select_value = st.lists(st.one_of(st.sampled_from(FIELD_NAMES), piece), max_size=5).map(",".join)
reserved_value = {
    "page": st.one_of(st.integers(-3, 2_000_000).map(str), piece),
    "limit": st.one_of(st.integers(-3, 200).map(str), piece),
    "sort": st.one_of(sort_value, piece),
    "select": st.one_of(select_value, piece),
    "cursor": st.one_of(_cursor(json_scalar), piece, text.map(lambda t: base64.urlsafe_b64encode(t.encode())
                                                               .decode())),
    "count": st.one_of(st.sampled_from(["auto", "exact", "estimated", "none", "EXACT"]), piece),
}
pair = st.one_of(
    st.tuples(st.sampled_from(FIELD_NAMES), filter_value),
    st.tuples(piece, filter_value),
    *[st.tuples(st.just(name), strategy) for name, strategy in reserved_value.items()],
)
queries = st.lists(pair, max_size=6)

# ---- what SQL text is allowed to consist of -------------------------------------------------------------

KEYWORDS = {"SELECT", "AS", "FROM", "WHERE", "ORDER", "BY", "ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT",
            "OFFSET", "AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE", "LIKE", "ILIKE", "ANY", "count", "capped",
            "IN", "lower", "WITH", "MATERIALIZED", "matches", "users", "accounts", "subscriptions", "chart_cache"}
SYMBOLS = set("(),=<>*")
PLACEHOLDER = re.compile(r'\$(\d+)::(?:"(\w+)"|(\w+))(\[\])?')
# count=auto: count(*) of at most cap + 1 rows (the search cap for a request with like/ilike)
CAPPED = {str(DEFAULT_LIMITS.count_cap + 1), str(DEFAULT_LIMITS.search_count_cap + 1)}
TYPES = {"text", "timestamp", "boolean", "integer", "Role", "SubscriptionStatus", "ChartType"}


def assert_sql_is_built_from_the_whitelist(spec, sql: str, args: list) -> None:
    for fixed in spec.fixed_where:  # the route's own conditions, not the client's
        sql = sql.replace(fixed, " ")
    numbers = set()
    for match in PLACEHOLDER.finditer(sql):
        numbers.add(int(match.group(1)))
        assert (match.group(2) or match.group(3)) in TYPES, match.group(0)
    rest = PLACEHOLDER.sub(" ", sql)
    identifiers = set(re.findall(r'"([^"]*)"', rest))
    assert identifiers <= {f.name for f in spec.fields} | {MATCHES, FETCHED}, identifiers
    rest = re.sub(r'"[^"]*"', " ", rest)
    for token in re.findall(r"[A-Za-z_]\w*|\d+|\S", rest):
        # the only number: the count cap of the settings (never a client's value)
        assert token in KEYWORDS or token in SYMBOLS or token == "1" or token in CAPPED, (token, sql)
    assert numbers <= set(range(1, len(args) + 1)), (numbers, len(args))


def assert_args_are_sendable(args: list) -> None:
    """What reaches asyncpg: strings PostgreSQL text can hold, times it can store, int4 integers."""
    for arg in args:
        for value in arg if isinstance(arg, list) else [arg]:
            if isinstance(value, str):
                assert "\x00" not in value
                value.encode()
            elif isinstance(value, datetime):
                encode_timestamp(value)
            elif isinstance(value, bool):
                pass
            else:
                assert isinstance(value, int) and -(2**31) <= value < 2**31, value


def check(spec_name: str, pairs: list[tuple[str, str]]) -> ListQuery | Problem:
    spec, fixed = SPECS[spec_name]
    query = MultiDict(pairs)
    try:
        q = build_list_query(spec, query, list(fixed))
    except Problem as problem:
        assert problem.status == 400
        assert problem.errors and problem.errors[0].field in query, (problem.errors, pairs)
        return problem
    assert_sql_is_built_from_the_whitelist(spec, q.sql, q.args)
    numbers = {int(n) for n in re.findall(r"\$(\d+)", q.sql)}
    assert numbers == set(range(1, len(q.args) + 1))  # every argument is used
    assert (q.few_sql is not None) == q.search
    if q.few_sql is not None:  # a search's page from its matches: the same arguments, every one used
        assert_sql_is_built_from_the_whitelist(spec, q.few_sql, q.args)
        assert {int(n) for n in re.findall(r"\$(\d+)", q.few_sql)} == numbers
    if q.count_sql is not None:
        assert_sql_is_built_from_the_whitelist(spec, q.count_sql, q.count_args)
        assert_sql_is_built_from_the_whitelist(spec, q.estimate_sql, q.count_args)
        # count=auto stops counting after the cap (a search's: the lower search cap); exact and estimated
        # count every row
        cap = DEFAULT_LIMITS.search_count_cap if q.search else DEFAULT_LIMITS.count_cap
        assert (f"LIMIT {cap + 1})" in q.count_sql) == (q.count_mode == "auto")
        assert q.search == any(raw.removeprefix("not.").startswith(("like.", "ilike."))
                               for key, raw in pairs if key in spec.by_name)
    if q.budget_sql is not None:
        assert_sql_is_built_from_the_whitelist(spec, q.budget_sql, q.budget_args)
        assert {int(n) for n in re.findall(r"\$(\d+)", q.budget_sql)} == set(range(1, len(q.budget_args) + 1))
    assert_args_are_sendable(q.args)
    assert q.args[: len(fixed)] == fixed
    for key, value in pairs:  # no injection string in the SQL, in any position
        for text_ in (key, value):
            if len(text_) >= 3 and any(c in text_ for c in "'\";\\$%\x00") or not text_.isascii():
                assert text_ not in q.sql
    assert 1 <= q.limit <= 100 and q.page >= 1
    return q


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(spec_name="users", pairs=[("email", "eq.'; DROP TABLE users; --")])
@example(spec_name="users", pairs=[("sort", 'email" DESC; --')])
@example(spec_name="users", pairs=[('email"; --', "eq.x")])
@example(spec_name="users", pairs=[("select", 'id,"password"')])
@example(spec_name="users", pairs=[("limit", "1; DROP TABLE users")])
@example(spec_name="users", pairs=[("createdAt", "gt.0001-01-01T00:00:00+14:00")])
@example(spec_name="users", pairs=[("email", "in.(a,b\x00)")])
@given(spec_name=st.sampled_from(list(SPECS)), pairs=queries)
def test_random_queries_are_a_list_query_or_a_400(spec_name, pairs):
    check(spec_name, pairs)


@st.composite
def poisoned_query(draw):
    """A well-formed query with one position (field, operator, value, sort, select, cursor, limit, page,
    count) replaced by hostile text, so that every position's own parser is reached."""
    spec_name = draw(st.sampled_from(list(SPECS)))
    spec, _ = SPECS[spec_name]
    pairs = [pair for pair in draw(st.lists(valid_filter(spec), max_size=3))]
    sortable = [f.name for f in spec.fields if f.sort and not f.nullable]
    sort_items = [draw(st.sampled_from(["", "-"])) + name
                  for name in draw(st.lists(st.sampled_from(sortable), unique=True, min_size=1, max_size=3))]
    select_items = draw(st.lists(st.sampled_from([f.name for f in spec.fields]), min_size=1, max_size=3))
    reserved = {"limit": str(draw(st.integers(1, 100))), "page": str(draw(st.integers(1, 50))),
                "count": draw(st.sampled_from(["exact", "estimated", "none"]))}
    position = draw(st.sampled_from(["field", "operator", "value", "sort", "select", "cursor", "limit", "page",
                                     "count", "none"]))
    bad = draw(piece)
    if position == "field":
        pairs.append((bad, draw(filter_value)))
    elif position in ("operator", "value"):
        name, expression = draw(valid_filter(spec))
        negation = "not." if expression.startswith("not.") else ""
        op, _, value = expression.removeprefix("not.").partition(".")
        pairs.append((name, negation + (f"{bad}.{value}" if position == "operator" else f"{op}.{bad}")))
    elif position == "sort":
        sort_items.insert(draw(st.integers(0, len(sort_items))), draw(st.sampled_from(["", "-"])) + bad)
    elif position == "select":
        select_items.insert(draw(st.integers(0, len(select_items))), bad)
    elif position == "cursor":
        reserved.pop("page")
        sort = build_list_query(spec, MultiDict([("sort", ",".join(sort_items))])).sort
        values = draw(st.lists(json_scalar, min_size=len(sort), max_size=len(sort)))
        if draw(st.booleans()):  # the values a real row has, but one of them hostile
            values = [draw(VALID_VALUES["time"]) if f.kind == "time" else
                      draw(st.sampled_from(f.enum)) if f.kind == "enum" else "row-id" for f, _ in sort]
            values[draw(st.integers(0, len(values) - 1))] = bad
        reserved["cursor"] = base64.urlsafe_b64encode(msgspec.json.encode([_cursor_secret(spec, sort), values])) \
            .decode().rstrip("=")
    elif position in reserved:
        reserved[position] = bad
    pairs += [("sort", ",".join(sort_items)), ("select", ",".join(select_items)), *reserved.items()]
    return spec_name, draw(st.permutations(pairs))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=poisoned_query())
def test_hostile_text_in_any_one_position_is_a_list_query_or_a_400(case):
    check(*case)


# values a client would rightly send, by field type: these must never be refused
VALID_VALUES = {
    "text": st.text(st.characters(blacklist_characters="\x00,()", blacklist_categories=("Cs",)), max_size=20),
    "time": st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
    .map(lambda d: d.isoformat(timespec="milliseconds") + "Z"),
    "int": st.integers(-(2**31), 2**31 - 1).map(str),
    "bool": st.sampled_from(["true", "false", "TRUE", "False"]),
}


@st.composite
def valid_filter(draw, spec):
    f = draw(st.sampled_from([f for f in spec.fields if f.filter]))
    if f.kind == "enum":
        label = draw(st.sampled_from(f.enum))
        value = draw(st.sampled_from([label, label.lower(), label.title()]))  # any case
    else:
        value = draw(VALID_VALUES[f.kind])
    ops = ["eq", "neq", "gt", "gte", "lt", "lte", "in", "is"] + (["like", "ilike"] if f.kind == "text" else [])
    op = draw(st.sampled_from(ops))
    if op == "is":
        value = draw(st.sampled_from(["null", "true", "false"] if f.kind == "bool" else ["null", "NULL"]))
    elif op == "in":
        value = f"({value})" if value.strip() else "(x)"  # in.( ) names no value: a 400 of its own
    return f.name, ("not." if draw(st.booleans()) else "") + f"{op}.{value}"


@settings(max_examples=300, deadline=None)
@given(data=st.data(), spec_name=st.sampled_from(list(SPECS)))
def test_well_formed_queries_are_accepted(data, spec_name):
    spec, _ = SPECS[spec_name]
    pairs = data.draw(st.lists(valid_filter(spec), max_size=4))
    sortable = [f.name for f in spec.fields if f.sort]
    sort = data.draw(st.lists(st.sampled_from(sortable), unique=True, max_size=3))
    if sort:
        pairs.append(("sort", ",".join(data.draw(st.sampled_from(["", "-"])) + s for s in sort)))
    pairs.append(("select", ",".join(data.draw(st.lists(st.sampled_from([f.name for f in spec.fields]),
                                                         min_size=1, max_size=4)))))
    limit = data.draw(st.integers(1, 100))
    pairs.append(("limit", str(limit)))
    pairs.append(("page", str(data.draw(st.integers(1, DEFAULT_LIMITS.max_offset_rows // limit)))))
    q = check(spec_name, pairs)
    assert isinstance(q, ListQuery), (pairs, q.errors if isinstance(q, Problem) else None)


# ---- specific shapes --------------------------------------------------------------------------------------

def build(pairs, spec=USERS, fixed=()):
    return build_list_query(spec, MultiDict(pairs), list(fixed))


def test_values_are_arguments_and_identifiers_are_quoted_from_the_whitelist():
    q = build([("email", "eq.'; DROP TABLE users; --"), ("role", "in.(admin,User)"), ("name", "not.is.null"),
               ("sort", "role,-createdAt"), ("select", "id,email")])
    assert "DROP" not in q.sql and "'" not in q.sql
    assert q.args[:2] == ["'; DROP TABLE users; --", ["ADMIN", "USER"]]
    assert '"email" = $1::text' in q.sql and '"role" = ANY($2::"Role"[])' in q.sql
    assert 'NOT ("name" IS NULL)' in q.sql
    assert 'ORDER BY "role" ASC, "createdAt" DESC, "id" DESC' in q.sql
    assert q.select == ("id", "email")


def test_like_turns_star_into_percent():
    q = build([("email", "ilike.*@EXAMPLE.com")])
    assert q.args[0] == "%@EXAMPLE.com" and '"email" ILIKE $1::text' in q.sql


def test_a_name_given_twice_gives_each_condition_once():
    q = build([("createdAt", "gte.2026-01-01"), ("createdAt", "lt.2026-02-01")])
    assert q.sql.count('"createdAt" >=') == 1 and q.sql.count('"createdAt" <') == 1
    assert len(q.count_args) == 2


def test_defaults():
    q = build([])
    assert (q.page, q.limit, q.count_mode, q.cursor_mode) == (1, 10, "auto", False)
    assert [(f.name, d) for f, d in q.sort] == [("createdAt", True), ("id", True)]
    assert q.args[-2:] == [11, 0]  # one row more than the page tells whether there is a next one


def test_fixed_arguments_come_first():
    q = build([("provider", "eq.google")], ACCOUNTS, ["user-1"])
    assert q.args[0] == "user-1" and '"userId" = $1' in q.sql and '"provider" = $2::text' in q.sql


@pytest.mark.parametrize("pairs, field", [
    ([("nope", "eq.1")], "nope"), ([("email", "zz.1")], "email"), ([("role", "eq.owner")], "role"),
    ([("createdAt", "eq.2026-13-01")], "createdAt"), ([("limit", "0")], "limit"), ([("limit", "101")], "limit"),
    ([("page", "0")], "page"), ([("sort", "password")], "sort"), ([("select", "password")], "select"),
    ([("cursor", "!!")], "cursor"), ([("cursor", "x"), ("page", "1")], "cursor"), ([("count", "all")], "count"),
    ([("email", "eq.\x00")], "email"), ([("createdAt", "lt.9999-12-31T23:59:59-14:00")], "createdAt"),
])
def test_bad_input_is_a_400_naming_the_parameter(pairs, field):
    with pytest.raises(Problem) as caught:
        build(pairs)
    assert caught.value.status == 400 and caught.value.errors[0].field == field


def test_cursor_round_trip_and_keyset_condition():
    q = build([("sort", "role,-createdAt")])
    row = {"role": "USER", "createdAt": "2026-01-02T03:04:05.678Z", "id": "u1"}
    cursor = encode_cursor(USERS, q.sort, row)
    q2 = build([("sort", "role,-createdAt"), ("cursor", cursor)])
    assert q2.cursor_mode and "OFFSET" in q2.sql and q2.args[-1] == 0
    # mixed directions: expanded OR of prefixes, never a row comparison
    assert '("role" > $1::"Role")' in q2.sql and '"createdAt" < $2::timestamp' in q2.sql
    assert q2.args[:3] == ["USER", datetime.fromisoformat("2026-01-02T03:04:05.678+00:00"), "u1"]
    same = build([("sort", "-createdAt"), ("cursor", encode_cursor(USERS, build([]).sort, row))])
    assert '("createdAt", "id") < ($1::timestamp, $2::text)' in same.sql
    # a cursor of another order is refused
    with pytest.raises(Problem):
        build([("sort", "role,createdAt"), ("cursor", cursor)])
    # a forged cursor with the right check but a bad value is a 400, not a crash
    forged = base64.urlsafe_b64encode(msgspec.json.encode([_cursor_secret(USERS, q.sort), ["OWNER", "x", "y"]]))
    with pytest.raises(Problem) as caught:
        build([("sort", "role,-createdAt"), ("cursor", forged.decode().rstrip("="))])
    assert caught.value.errors[0].field == "cursor"


def test_reserved_names_are_not_fields():
    for spec, _ in SPECS.values():
        assert not set(RESERVED) & set(spec.by_name)


def test_what_is_expensive_and_what_needs_the_row_budget():
    # searches and exact counts run under the short timeout; a value that merely contains "like." does not
    assert build([("email", "ilike.*abc*")]).expensive and build([("count", "exact")]).expensive
    assert not build([("email", "eq.like.x")]).expensive and not build([]).expensive
    # index-backed: no budget query
    for pairs in ([], [("email", "ilike.*abc*")], [("role", "eq.ADMIN")], [("sort", "email")],
                  [("createdAt", "gte.2026-01-01T00:00:00Z")]):
        assert build(pairs).budget_sql is None, pairs
    # not index-backed: the budget counts the rows the index-backed conditions leave (renumbered $n)
    q = build([("role", "eq.ADMIN"), ("sort", "name")])
    assert q.budget_param == "sort" and q.budget_args == ["ADMIN"]
    assert q.budget_sql == ('SELECT count(*) FROM (SELECT 1 FROM users WHERE "role" = $1::"Role" LIMIT 10001) '
                            'AS capped')
    # with a search in the request the budget is the search cap (1,000)
    q = build([("name", "ilike.*a*"), ("role", "eq.ADMIN"), ("sort", "name")])
    assert q.budget_param == "name" and q.budget_args == ["ADMIN"]
    assert q.budget_sql == ('SELECT count(*) FROM (SELECT 1 FROM users WHERE "role" = $1::"Role" LIMIT 1001) '
                            'AS capped')
    assert build([("sort", "updatedAt")]).budget_param == "sort"
    assert build([("role", "neq.USER")]).budget_param == "role"
    # nullable fields sort NULLS FIRST ascending: only an index built that way serves the sort
    assert build([("sort", "currentPeriodEnd")], SUBSCRIPTIONS).budget_sql is None
    assert build([("sort", "-userId")], CHARTS).budget_param == "sort"
    # the accounts of one user are few: nothing is budgeted
    assert build([("provider", "like.g*"), ("sort", "scope")], ACCOUNTS, ["u1"]).budget_sql is None


def test_which_index_a_search_goes_through():
    # ilike with a prefix of 3+ characters and nothing after it: lower(email) LIKE lower(pattern), the btree
    q = build([("email", "ilike.Ann.Sm*")])
    assert 'lower("email") LIKE lower($1::text)' in q.sql and q.args[0] == "Ann.Sm%"
    assert q.search and not q.trigram and not q.few_trigram and q.budget_sql is None
    # anything else stays a trigram search: a substring, more after the prefix, name, a case-sensitive like
    for pairs in ([("email", "ilike.*ann*")], [("email", "ilike.ann*meyer12345*")], [("name", "ilike.Ann*")],
                  [("email", "like.Ann*")]):
        q = build(pairs)
        assert "lower(" not in q.sql and q.trigram and q.few_trigram, pairs
    # two characters: no index at all (the row budget decides)
    q = build([("email", "ilike.an*")])
    assert "lower(" not in q.sql and not q.trigram and q.budget_param == "email"
    # a case-sensitive like of a lowercase ASCII prefix: the same condition everywhere, but the few-matches
    # query finds its rows through the lower(email) range and checks the exact condition on them
    q = build([("email", "like.emma.r*")])
    assert "lower(" not in q.sql and "lower(" not in q.count_sql and q.trigram and not q.few_trigram
    assert 'lower("email") LIKE $1::text' in q.few_sql and q.few_superset
    assert 'WHERE "email" LIKE $1::text AND TRUE' in q.few_sql  # the recheck (no cursor: TRUE)
    for pattern in ("like.Emma*", "like.emma_r*", "like.émile*", "not.like.emma*"):
        assert not build([("email", pattern)]).few_superset, pattern


def test_offset_cap_and_pattern_caps():
    build([("page", "100"), ("limit", "100")])  # 10,000 rows: the cap itself
    for pairs, field in (([("page", "101"), ("limit", "100")], "page"), ([("page", "1001")], "page"),
                         ([("email", "like." + "x" * 101)], "email"),
                         ([("createdAt", "gte.2026-01-01T00:00:00Z")] * 11, "createdAt")):
        with pytest.raises(Problem) as caught:
            build(pairs)
        assert caught.value.status == 400 and caught.value.errors[0].field == field
