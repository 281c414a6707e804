"""/openapi.json, generated from the route table and the msgspec Structs (never written by hand)."""

from __future__ import annotations

import re

import msgspec

from .problems import ProblemBody
from .routing import PUBLIC, Route

_PATH_PARAM = re.compile(r"{(\w+)}")


def build_openapi(routes: list[Route], version: str) -> bytes:
    types = [ProblemBody]
    for route in routes:
        answers = route.answer if isinstance(route.answer, tuple) else (route.answer,)
        types += [t for t in (route.body, *answers) if t is not None]
    (_, components) = msgspec.json.schema_components(
        list(dict.fromkeys(types)), ref_template="#/components/schemas/{name}")
    problem = {"description": "problem", "content": {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemBody"}}}}
    paths: dict = {}
    for route in routes:
        operation: dict = {
            "operationId": route.handler.__name__,
            "summary": route.summary,
            "tags": [route.tag],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PATH_PARAM.findall(route.path)
            ] + [
                {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
                for name, text in route.query
            ],
            "responses": {},
        }
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}}}
        ok: dict = {"description": "success"}
        if isinstance(route.answer, tuple):  # one of several shapes
            ok["content"] = {"application/json": {"schema": {"oneOf": [
                {"$ref": f"#/components/schemas/{t.__name__}"} for t in route.answer]}}}
        elif route.answer is not None:
            ok["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{route.answer.__name__}"}}}
        for status in (route.status, *route.also):
            operation["responses"][str(status)] = ok
        operation["parameters"] += [
            {"name": name, "in": "header", "required": True, "description": text, "schema": {"type": "string"}}
            for name, text in route.headers
        ]
        codes = set(route.errors)
        if route.body is not None:
            codes |= {400, 408, 413, 422}  # 408: the body arrived too slowly
        if route.query:
            codes.add(400)
        if route.scope != PUBLIC:
            # Any /v1 route may meet input it cannot use: malformed (400) or unstorable, e.g. a NUL (422).
            codes |= {400, 401, 403, 422, 429}  # 429: the token is over its budget (limits.py)
            operation["security"] = [{"bearer": []}]
        else:
            operation["security"] = []
        for code in sorted(codes | {500, 503}):
            operation["responses"][str(code)] = problem
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    document = {
        "openapi": "3.1.0",
        "info": {"title": "Astrowellness data service", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    return msgspec.json.encode(document)
