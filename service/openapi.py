"""/openapi.json, generated from the route table, the msgspec Structs and the list specs (never by hand).

Precise enough to generate clients from (CI generates one with openapi-python-client): every answer
typed (a list route's page holds its own item type), every query parameter typed (a list's filters
per declared field), problem codes as an enum, every problem a route can answer, examples.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .listing import COUNT_MODES, MAX_LIMIT, OPERATORS, ListSpec
from .openapi_examples import EXAMPLES
from .problems import ROUTE_NOT_FOUND, TITLES, ProblemBody
from .routes.params import comma_list_schema
from .routing import PUBLIC, Route
from .schemas import Page

_PATH_PARAM = re.compile(r"{(\w+)}")
_REF = "#/components/schemas/{name}"
# What each problem status means on a route that declares it (the code says the rest).
PROBLEM_WHEN = {
    400: "malformed JSON, or an unknown query parameter, field or operator",
    401: "no bearer token, or an unknown one",
    403: "a read token on a write route",
    404: "the row does not exist (code not_found)",
    408: "the request body arrived too slowly",
    409: "a unique or foreign-key conflict; errors names the field",
    413: "the body is larger than MAX_BODY_BYTES",
    422: "the body does not fit; errors lists every invalid field",
    429: "this token is over its budget (requests, expensive lists or password work in flight); retry after "
         "Retry-After seconds",
    500: "an unexpected failure; quote requestId",
    503: "the database is unavailable; retry after Retry-After seconds",
}
# Their only key is a secret token, which never goes in a path: no Location to give.
CREATED_WITHOUT_LOCATION = {"/v1/sessions", "/v1/verification-tokens"}
_VALUE_OF_KIND = {
    "text": "text (like/ilike: * is the wildcard)", "time": "an RFC 3339 time (UTC if no zone)",
    "enum": "one of {labels}", "bool": "true or false", "int": "an integer", "float": "a number",
}


def _ref(struct: type) -> dict:
    return {"$ref": _REF.format(name=struct.__name__)}


def build_openapi(routes: list[Route], version: str) -> bytes:
    types: list[type] = [ProblemBody, Page]
    for route in routes:
        answers = route.answer if isinstance(route.answer, tuple) else (route.answer,)
        types += [t for t in (route.body, *answers, route.item) if t is not None]
    (_, components) = msgspec.json.schema_components(list(dict.fromkeys(types)), ref_template=_REF)
    components.pop("ListPage", None)  # replaced by one typed page per list route
    components["ListCount"] = {
        "type": "string", "enum": list(COUNT_MODES), "default": "auto",
        "description": "auto: exact up to the count cap (10,000 by default), then the planner's estimate "
                       "(pagination.totalIsEstimate); exact: always count (costly on big tables); estimated: "
                       "the planner's guess, exact below 1,000 rows; none: no total"}
    _problem_components(components)
    paths: dict = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    for name, example in EXAMPLES.items():
        if name in components:
            components[name]["examples"] = [example]
    document = {
        "openapi": "3.1.0",
        "info": {"title": "Astrowellness data service", "version": version,
                 "description": "The platform's data service. The contract in prose: docs/API.md."},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "responses": {f"Problem{status}": _problem_response(status) for status in sorted(TITLES)},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a service token from SERVICE_TOKENS"}},
        },
    }
    return msgspec.json.encode(document)


def _operation(route: Route, components: dict) -> dict:
    operation: dict = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
            for name in _PATH_PARAM.findall(route.path)
        ],
        "responses": {},
    }
    declared = {name for name, *_ in route.query}
    operation["parameters"] += [_query_parameter(*q) for q in route.query]
    if route.listing is not None:
        operation["parameters"] += [p for p in list_parameters(route.listing) if p["name"] not in declared]
    operation["parameters"] += [
        {"name": name, "in": "header", "required": True, "description": text, "schema": {"type": "string"}}
        for name, text in route.headers
    ]
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(route.body)}}}
    ok = {"description": "success"}
    answers = route.answer if isinstance(route.answer, tuple) else (route.answer,)
    schemas = [_page_ref(route, components) if t.__name__ == "ListPage"
               else _selection_ref(t, components) if route.selectable else _ref(t)
               for t in answers if t is not None]
    if schemas:
        schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
        ok["content"] = {"application/json": {"schema": schema}}
    for status in (route.status, *route.also):
        answer = dict(ok)
        if status == 201 and route.path not in CREATED_WITHOUT_LOCATION:
            answer["headers"] = {"Location": {"description": "the path of the new resource",
                                              "schema": {"type": "string"}}}
        operation["responses"][str(status)] = answer
    codes = set(route.errors)
    if route.body is not None:
        codes |= {400, 408, 413, 422}
    if route.query or route.listing is not None:
        codes.add(400)
    if route.scope != PUBLIC:
        # Any /v1 route may meet input it cannot use: malformed (400) or unstorable, e.g. a NUL (422).
        codes |= {400, 401, 403, 422, 429}  # 429: the token is over its budget (limits.py)
        operation["security"] = [{"bearer": []}]
    else:
        operation["security"] = []
    for code in sorted(codes | {500, 503}):
        operation["responses"][str(code)] = {"$ref": f"#/components/responses/Problem{code}"}
    return operation


def _query_parameter(name: str, text: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "required": False, "description": text,
            "schema": schema or {"type": "string"}}


def _selection_ref(struct: type, components: dict) -> dict:
    """`<Struct>Selection`: the Struct's fields, none required: an answer shaped by `select`."""
    name = struct.__name__
    selection = f"{name}Selection"
    if selection not in components:
        schema = {k: v for k, v in components[name].items() if k not in ("required", "title")}
        schema["description"] = f"A {name}: every field, or those named by select."
        components[selection] = schema
    return {"$ref": _REF.format(name=selection)}


def _page_ref(route: Route, components: dict) -> dict:
    """`<Item>Page`: {data: [<Item>Selection], pagination}."""
    page = f"{route.item.__name__}Page"
    if page not in components:
        components[page] = {
            "type": "object", "required": ["data", "pagination"],
            "properties": {"data": {"type": "array", "items": _selection_ref(route.item, components)},
                           "pagination": _ref(Page)}}
    return {"$ref": _REF.format(name=page)}


def list_parameters(spec: ListSpec) -> list[dict]:
    """page, limit, sort, select, cursor, count, and one filter parameter per filterable field."""
    names = [f.name for f in spec.fields]
    sortable = [f.name for f in spec.fields if f.sort]
    params = [
        _query_parameter("page", "1-based page number", {"type": "integer", "minimum": 1, "maximum": 1_000_000,
                                                         "default": 1}),
        _query_parameter("limit", "rows per page", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                                    "default": 10}),
        _query_parameter("sort", f"fields, comma separated; -field for descending. Sortable: {', '.join(sortable)}",
                         {"type": "string", "pattern": _sort_pattern(sortable),
                          "examples": [",".join(spec.default_sort)]}),
        _query_parameter("select", f"the fields to return, comma separated: {', '.join(names)}",
                         comma_list_schema(names)),
        _query_parameter("cursor", "pagination.nextCursor of the previous page (keyset paging; not with page)",
                         {"type": "string"}),
        _query_parameter("count", "how pagination.total is counted (default auto)",
                         {"$ref": _REF.format(name="ListCount")}),
    ]
    for f in spec.fields:
        if not f.filter:
            continue
        ops = [op for op in OPERATORS if f.kind == "text" or op not in ("like", "ilike")]
        value = _VALUE_OF_KIND[f.kind].format(labels=", ".join(f.enum))
        params.append(_query_parameter(
            f.name,
            f"filter: op.value with op one of {', '.join(ops)}, optionally prefixed by not. "
            f"(in.(a,b) for a list, is.null{' or is.true/is.false' if f.kind == 'bool' else ''}); "
            f"the value is {value}. Repeat the parameter to AND conditions.",
            {"type": "string", "pattern": rf"^(not\.)?({'|'.join(ops)})\.", "examples": [_filter_example(f)]}))
    return params


def _sort_pattern(names: list[str]) -> str:
    item = rf"\s*[+-]*({'|'.join(names)})\s*"
    return rf"^{item}(,{item})*$"


def _filter_example(f) -> str:
    return {"time": "gte.2026-01-01T00:00:00Z", "enum": f"eq.{f.enum[0] if f.enum else ''}",
            "bool": "is.true", "int": "gt.0", "float": "gt.0"}.get(f.kind, "ilike.*example*")


def _problem_components(components: dict) -> None:
    codes = [code for code, _ in TITLES.values()]
    codes.insert(codes.index("not_found") + 1, ROUTE_NOT_FOUND)
    components["ProblemCode"] = {
        "type": "string", "enum": codes,
        "description": "not_found: the row does not exist; route_not_found: no route serves the path "
                       "(a wrong base URL). docs/API.md lists when each is answered."}
    body = components["ProblemBody"]
    body["description"] = "RFC 9457 problem details"
    body["properties"]["code"] = {"$ref": _REF.format(name="ProblemCode")}


def _problem_response(status: int) -> dict[str, Any]:
    code, title = TITLES[status]
    response: dict[str, Any] = {
        "description": f"{title} ({code}): {PROBLEM_WHEN.get(status, title.lower())}",
        "content": {"application/problem+json": {
            "schema": {"$ref": _REF.format(name="ProblemBody")},
            "example": {"type": f"https://astrowellness.dev/problems/{code}", "title": title, "status": status,
                        "detail": PROBLEM_WHEN.get(status, title), "code": code,
                        "requestId": "5f0c2a9e1b7d00000000002a",
                        **({"errors": [{"field": "email", "message": "must be an e-mail address"}]}
                           if status == 422 else {})}}},
    }
    if status == 503:
        response["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}}
    return response
