"""Tracing (service/tracing.py): off unless OTEL_* turns it on; spans, their names and parents; trace ids
in the access line and in problem answers; export over OTLP/HTTP to a real (local) receiver."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import uuid

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service import PROJECT_ROOT, tracing
from service.app import create_app
from tests.conftest import READ, WRITE, make_settings, problem, unique_email
from tests.stripe_helpers import checkout_event, deliver_ok, subscription_event, uid

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.shutdown()


@pytest.fixture
async def traced_client(aiohttp_client, migrated_database_url, redis_url, spans):
    return await aiohttp_client(create_app(make_settings(migrated_database_url, redis_url)))


def by_name(exporter, name):
    return [s for s in exporter.get_finished_spans() if s.name == name]


def server_span(exporter, name):
    found = [s for s in by_name(exporter, name) if s.kind == SpanKind.SERVER]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def children_of(exporter, parent):
    return [s for s in exporter.get_finished_spans()
            if s.parent is not None and s.parent.span_id == parent.context.span_id]


# ---- off unless configured ---------------------------------------------------------------------------

@pytest.mark.parametrize("env, on", [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "data", "OTEL_TRACES_SAMPLER": "always_on"}, False),  # no exporter named
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
])
def test_tracing_is_on_only_when_otel_variables_ask(env, on):
    assert tracing.wanted(env) is on
    assert tracing.configure_from_env(env) is on
    assert (tracing.TRACER is not None) is on
    tracing.shutdown()
    assert tracing.TRACER is None


def test_unsupported_exporter_or_protocol_is_refused_by_name():
    with pytest.raises(tracing.TracingConfigError, match="OTEL_TRACES_EXPORTER"):
        tracing.configure_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(tracing.TracingConfigError, match="http/protobuf"):
        tracing.configure_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317",
                                    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert tracing.TRACER is None


async def test_without_tracing_answers_carry_no_trace_id(client, caplog):
    assert tracing.TRACER is None
    with caplog.at_level(logging.INFO, logger="service.access"):
        body = await problem(await client.get(f"/v1/users/{uuid.uuid4().hex}", headers={**READ, **TRACEPARENT}),
                             404)
    assert "traceId" not in body
    lines = [r for r in caplog.records if r.name == "service.access"]
    assert lines and not any(hasattr(r, "trace_id") for r in lines)


# ---- spans -------------------------------------------------------------------------------------------

async def test_request_continues_the_callers_trace_with_sql_and_cache_spans(traced_client, spans):
    r = await traced_client.post("/v1/users", json={"email": unique_email()}, headers=WRITE)
    user = await r.json()
    spans.clear()
    r = await traced_client.get(f"/v1/users/{user['id']}", headers={**READ, **TRACEPARENT})
    assert r.status == 200

    request = server_span(spans, "GET /v1/users/{id}")
    assert format(request.context.trace_id, "032x") == CALLER_TRACE
    assert format(request.parent.span_id, "016x") == CALLER_SPAN and request.parent.is_remote
    assert request.attributes["http.route"] == "/v1/users/{id}"
    assert request.attributes["http.response.status_code"] == 200

    children = children_of(spans, request)
    names = [s.name for s in children]
    assert "cache get_entry" in names  # the Redis read before the database
    sql = [s for s in children if s.attributes.get("db.system") == "postgresql"]
    assert [s.name for s in sql] == ["get_user_by_id"]
    assert sql[0].kind == SpanKind.CLIENT
    redis_spans = [s for s in children if s.attributes.get("db.system") == "redis"]
    assert {s.name for s in redis_spans} >= {"cache get_entry", "cache fill"}
    # Named, never valued: the user id, e-mail or SQL text is in no span.
    for span in spans.get_finished_spans():
        for value in [span.name, *map(str, span.attributes.values())]:
            assert user["id"] not in value and user["email"] not in value and "SELECT" not in value


async def test_sql_in_a_transaction_and_bcrypt_get_spans_under_the_request(traced_client, spans):
    r = await traced_client.post("/v1/users", headers=WRITE,
                                 json={"email": unique_email(), "password": "correct horse"})
    assert r.status == 201
    request = server_span(spans, "POST /v1/users")
    names = {s.name for s in children_of(spans, request)}
    assert "bcrypt hash" in names
    assert "insert_user" in names
    bcrypt_span = by_name(spans, "bcrypt hash")[0]
    assert bcrypt_span.end_time - bcrypt_span.start_time > 0


async def test_stripe_event_application_has_its_span_with_outcome_and_statements(traced_client, spans):
    r = await traced_client.post("/v1/users", json={"email": unique_email()}, headers=WRITE)
    user_id = (await r.json())["id"]
    customer, sub = uid("cus"), uid("sub")
    await deliver_ok(traced_client, checkout_event(user_id=user_id, customer=customer, sub=sub, created=1000))
    spans.clear()
    await deliver_ok(traced_client, subscription_event("updated", sub=sub, customer=customer, created=2000))
    request = server_span(spans, "POST /v1/stripe/webhook")
    [apply] = by_name(spans, "stripe apply_event")
    assert apply.parent.span_id == request.context.span_id
    assert apply.attributes["stripe.event.type"] == "customer.subscription.updated"
    assert apply.attributes["stripe.event.outcome"] == "applied"
    assert {"stripe_lock_and_read", "stripe_record"} <= {
        s.name for s in children_of(spans, apply)}


async def test_trace_id_in_every_problem_and_in_the_access_line(traced_client, spans, caplog):
    with caplog.at_level(logging.INFO, logger="service.access"):
        missing = await problem(await traced_client.get(f"/v1/users/{uuid.uuid4().hex}",
                                                        headers={**READ, **TRACEPARENT}), 404)
        unauthorized = await problem(await traced_client.get("/v1/users/x", headers=TRACEPARENT), 401)
        invalid = await problem(await traced_client.post("/v1/users", json={"email": 5}, headers=WRITE), 422)
    assert missing["traceId"] == unauthorized["traceId"] == CALLER_TRACE
    # Without a traceparent the service starts a trace; its id is the request span's.
    [post] = [s for s in by_name(spans, "POST /v1/users") if s.kind == SpanKind.SERVER]
    assert invalid["traceId"] == format(post.context.trace_id, "032x") != CALLER_TRACE
    lines = [r for r in caplog.records if r.name == "service.access"]
    assert [r.trace_id for r in lines] == [CALLER_TRACE, CALLER_TRACE, invalid["traceId"]]
    assert [r.status for r in lines] == [404, 401, 422]


async def test_a_5xx_marks_the_request_span_as_an_error(traced_client, spans):
    from opentelemetry.trace import StatusCode

    from service.deps import DEPS

    await traced_client.server.app[DEPS].db.pool.close()  # the database is gone: reads answer 503
    body = await problem(await traced_client.get(f"/v1/users/{uuid.uuid4().hex}", headers=READ), 503)
    request = server_span(spans, "GET /v1/users/{id}")
    assert request.status.status_code == StatusCode.ERROR
    assert body["traceId"] == format(request.context.trace_id, "032x")


async def test_fast_access_line_carries_the_trace_id(traced_client, spans, monkeypatch, caplog):
    """The running service's access lines skip the logging module (logs.py): same field there."""
    from service import logs

    class Lines:
        def __init__(self):
            self.written = []

        def write_line(self, line):
            self.written.append(line)

    sink = Lines()
    monkeypatch.setattr(logs, "_fast_access_stream", sink)
    with caplog.at_level(logging.INFO, logger="service.access"):
        await traced_client.get("/healthz", headers=TRACEPARENT)
        tracing.shutdown()
        await traced_client.get("/healthz", headers=TRACEPARENT)
    traced, untraced = map(json.loads, sink.written)
    assert traced["trace_id"] == CALLER_TRACE and traced["route"] == "/healthz" and traced["status"] == 200
    assert "trace_id" not in untraced


# ---- sampling and export -----------------------------------------------------------------------------

async def test_parent_based_ratio_sampler_follows_the_caller_and_still_reports_trace_ids(
        aiohttp_client, migrated_database_url, redis_url):
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter), sampler=ParentBased(TraceIdRatioBased(0.0)))
    try:
        client = await aiohttp_client(create_app(make_settings(migrated_database_url, redis_url)))
        unsampled = await problem(await client.get(f"/v1/users/{uuid.uuid4().hex}", headers=READ), 404)
        assert exporter.get_finished_spans() == ()
        assert len(unsampled["traceId"]) == 32  # not recorded, but the id is there to correlate with
        await client.get(f"/v1/users/{uuid.uuid4().hex}", headers={**READ, **TRACEPARENT})  # caller sampled
        assert {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans()} == {CALLER_TRACE}
    finally:
        tracing.shutdown()


async def test_spans_reach_an_otlp_http_receiver(aiohttp_client, migrated_database_url, redis_url, monkeypatch):
    runner, endpoint, received = await otlp_receiver()
    for name, value in {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                        "OTEL_SERVICE_NAME": "data-under-test", "OTEL_TRACES_SAMPLER": "always_on",
                        "OTEL_BSP_SCHEDULE_DELAY": "50"}.items():
        monkeypatch.setenv(name, value)
    try:
        assert tracing.configure_from_env()
        client = await aiohttp_client(create_app(make_settings(migrated_database_url, redis_url)))
        r = await client.get(f"/v1/users/{uuid.uuid4().hex}", headers={**READ, **TRACEPARENT})
        assert r.status == 404
        # The batch processor's thread posts to the receiver, which runs on this loop: wait off-loop.
        await asyncio.to_thread(tracing.shutdown)
    finally:
        tracing.shutdown()
        await runner.cleanup()
    spans = [(resource_spans.resource, span) for message in received for resource_spans in message.resource_spans
             for scope in resource_spans.scope_spans for span in scope.spans]
    assert spans, "nothing exported"
    resource = {a.key: a.value.string_value for a in spans[0][0].attributes}
    assert resource["service.name"] == "data-under-test"
    by_span_name = {span.name: span for _, span in spans}
    request = by_span_name["GET /v1/users/{id}"]
    assert request.trace_id.hex() == CALLER_TRACE and request.parent_span_id.hex() == CALLER_SPAN
    assert by_span_name["get_user_by_id"].parent_span_id == request.span_id
    assert os.environ["OTEL_SERVICE_NAME"] == "data-under-test"


async def otlp_receiver():
    """A local OTLP/HTTP endpoint: (runner, url, received ExportTraceServiceRequest messages)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received = []

    async def traces(request: web.Request):
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", received


async def test_the_served_process_traces_from_otel_variables_and_flushes_on_sigterm(migrated_database_url,
                                                                                    redis_url):
    from tests.test_deploy import start_service, wait_healthy

    runner, endpoint, received = await otlp_receiver()
    process, base = start_service(migrated_database_url, redis_url, LOG_LEVEL="INFO",
                                  OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME="served",
                                  OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    try:
        await wait_healthy(base, process)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/v1/users/{uuid.uuid4().hex}", headers={"Authorization": "Bearer deploy-read", **TRACEPARENT}) as r:
                assert r.status == 404
                assert (await r.json())["traceId"] == CALLER_TRACE
        process.terminate()
        _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        await runner.cleanup()
    assert process.returncode == 0, stderr
    access = [json.loads(line) for line in stderr.splitlines() if '"service.access"' in line]
    assert [line["trace_id"] for line in access if line["route"] == "/v1/users/{id}"] == [CALLER_TRACE]
    names = {span.name for message in received for rs in message.resource_spans for scope in rs.scope_spans
             for span in scope.spans}
    # Sampled because the caller's traceparent says so (ratio 0 applies to traces this service starts).
    assert "GET /v1/users/{id}" in names and "get_user_by_id" in names


def test_serve_refuses_an_unsupported_otel_exporter_with_one_line(migrated_database_url, redis_url):
    from tests.test_deploy import start_service

    process, _ = start_service(migrated_database_url, redis_url, OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4317",
                               OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert stderr.strip().splitlines() == [
        "error: OTEL_EXPORTER_OTLP_PROTOCOL='grpc': this service sends http/protobuf"]


def test_with_tracing_off_opentelemetry_is_not_even_imported():
    code = ("import sys; from service.app import create_app; from service.settings import load_settings; "
            "from service import tracing; assert not tracing.configure_from_env({}); "
            "create_app(load_settings(env={})); "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def test_ratio_sampling_of_requests_without_a_caller_keeps_exactly_the_ids_the_rule_picks(
        aiohttp_client, migrated_database_url, redis_url):
    """traceidratio: the decision for a request this service starts is taken before the SDK is called
    (tracing.start_server_span); the SDK must record those requests, under the trace id the answer shows."""
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    exporter = InMemorySpanExporter()
    sampler = TraceIdRatioBased(0.5)
    tracing.install(SimpleSpanProcessor(exporter), sampler=sampler)
    try:
        client = await aiohttp_client(create_app(make_settings(migrated_database_url, redis_url)))
        answered = []
        for _ in range(40):
            body = await problem(await client.get(f"/v1/users/{uuid.uuid4().hex}", headers=READ), 404)
            answered.append(body["traceId"])
    finally:
        tracing.shutdown()
    picked = {t for t in answered if int(t, 16) & ((1 << 64) - 1) < sampler.bound}
    assert 0 < len(picked) < 40  # 40 draws at 1/2: both outcomes (all or none has odds of 2^-39)
    recorded = {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER}
    assert recorded == picked
    sql = {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans() if s.name == "get_user_by_id"}
    assert sql == picked  # and their statements, in the same traces
