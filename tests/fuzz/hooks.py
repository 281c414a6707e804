"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.fuzz.hooks, set by tests/test_fuzz.py): besides what it
generates from the schema, every third body of some routes carries what a hostile caller sends and the
schema cannot describe: JSON nested far deeper than MAX_JSON_DEPTH (120 levels: deeper crashes the generator
itself; tests/test_hostile_input.py sends 1,000), and tokens shaped like ciphertext
while no FIELD_ENCRYPTION_KEY is configured. The run's checks then require a 4xx problem, never a 5xx."""

import itertools
from collections import defaultdict

import schemathesis

_turns = defaultdict(itertools.count)  # per route: every route gets its every-third body


def _deep(levels: int):
    value = {"leaf": True}
    for i in range(levels):
        value = {"n": [value]} if i % 2 else [value]
    return value


@schemathesis.hook
def map_body(ctx, body):
    path = ctx.operation.path
    if not isinstance(body, dict) or next(_turns[path]) % 3:
        return body
    if path == "/v1/charts" and "chartData" in body:
        # Otherwise valid, so the depth limit (not another field) is what answers.
        body.update(chartData=_deep(120), chartType="TROPICAL", ttlSeconds=3600, userId=None)
        body.pop("expiresAt", None)
    elif path == "/v1/accounts":
        body["access_token"] = "enc:v1:k1:" + "A" * 40
    elif path == "/v1/users":
        body["natalData"] = {"birthDate": "1990-01-01T00:00:00Z", "location": "x", "extra": _deep(60)}
    return body
