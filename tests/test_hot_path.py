"""The hot path's own machinery (issue 15, issue 18): the fair line for pooled connections, the lock-free
request metrics, the lean OTLP encoder. Speed is measured in bench/ (tracing_overhead.py, run.py); these
tests hold the behaviour the faster versions must keep."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from service.connection_line import ConnectionLine
from service.db import Database, _free_holders_of
from service.metrics import LoopCounter, LoopHistogram
from service.settings import load_settings

# ---- the line for pooled connections --------------------------------------------------------------------


async def test_a_slot_given_back_goes_to_the_oldest_waiter_not_to_a_newcomer():
    line = ConnectionLine(1, timeout=5)
    assert line.take_now()
    first = asyncio.ensure_future(line.take())
    second = asyncio.ensure_future(line.take())
    await asyncio.sleep(0)
    line.give_back()  # handed to `first`, which has not run yet
    assert not line.take_now()  # a newcomer does not take it meanwhile
    await first
    assert not second.done()
    line.give_back()
    await second
    line.give_back()
    assert line.free == 1 and line.take_now()


async def test_a_waiter_past_its_deadline_gets_timeout_and_no_slot_is_lost():
    line = ConnectionLine(1, timeout=0.05)
    assert line.take_now()
    with pytest.raises(TimeoutError):
        await line.take()
    late = asyncio.ensure_future(line.take())  # a later waiter has its own deadline
    await asyncio.sleep(0.01)
    line.give_back()
    await late
    line.give_back()
    assert line.free == 1


async def test_the_timer_follows_the_oldest_waiter_when_the_earlier_ones_are_served():
    line = ConnectionLine(1, timeout=0.2)
    assert line.take_now()
    first = asyncio.ensure_future(line.take())
    await asyncio.sleep(0.1)
    second = asyncio.ensure_future(line.take())  # deadline 0.1 s after first's
    await asyncio.sleep(0)
    line.give_back()
    await first  # served before its deadline: the timer set for it finds `second` not yet due
    await asyncio.sleep(0.15)  # past first's deadline, before second's
    assert not second.done()
    with pytest.raises(TimeoutError):
        await second
    line.give_back()
    assert line.free == 1


async def test_a_cancelled_waiter_leaves_its_turn_and_a_cancelled_holder_passes_its_slot_on():
    line = ConnectionLine(1, timeout=5)
    assert line.take_now()
    gone = asyncio.ensure_future(line.take())
    waiting = asyncio.ensure_future(line.take())
    await asyncio.sleep(0)
    gone.cancel()  # still waiting: skipped when its turn comes
    await asyncio.sleep(0)
    line.give_back()
    await waiting
    handed = asyncio.ensure_future(line.take())
    last = asyncio.ensure_future(line.take())
    await asyncio.sleep(0)
    line.give_back()  # handed to `handed`...
    handed.cancel()  # ...which is cancelled before it resumes: `last` gets the slot
    with pytest.raises(asyncio.CancelledError):
        await handed
    await last
    line.give_back()
    assert line.free == 1 and line.waiting == 0


async def test_a_request_waiting_for_the_only_connection_gets_it_before_a_later_one(migrated_database_url):
    """asyncpg's own queue gives a released connection to whoever asks next: the later caller."""
    settings = load_settings(env={}, database_url=migrated_database_url, pool_min_size=1, pool_max_size=1)
    db = await Database.connect(migrated_database_url, settings)
    try:
        held = await db._acquire()
        order = []

        async def use(name):
            conn = await db._acquire()
            order.append(name)
            await asyncio.sleep(0.01)
            await db._release(conn)

        earlier = asyncio.ensure_future(use("earlier"))
        await asyncio.sleep(0.05)  # waiting for the connection
        release = asyncio.ensure_future(db._release(held))
        await asyncio.sleep(0)  # the release has begun (asyncpg puts the connection back from a task)
        later = asyncio.ensure_future(use("later"))  # a request that starts meanwhile, as under load
        await asyncio.gather(release, earlier, later)
        assert order == ["earlier", "later"]
    finally:
        await db.close()


async def test_the_pool_internals_the_fast_acquire_reads_are_there(migrated_database_url):
    """db.py takes a free open connection without a timer by reading asyncpg's queue of holders; if an
    asyncpg upgrade renames them every acquire is timed again (correct, but slower): this notices."""
    pool = await asyncpg.create_pool(migrated_database_url, min_size=1, max_size=2)
    try:
        holders = _free_holders_of(pool)
        assert holders is not None and holders[-1].is_connected()
        conn = await pool.acquire()
        assert not any(h.is_connected() for h in holders)  # the open one is out; the other is not open
        await pool.release(conn)
        assert holders[-1].is_connected()
    finally:
        await pool.close()


# ---- request metrics without prometheus_client's locks ---------------------------------------------------


def test_loop_instruments_read_exactly_like_prometheus_clients(monkeypatch):
    import prometheus_client.metrics

    monkeypatch.setattr(prometheus_client.metrics, "_use_created", False)  # timestamps differ by nature
    buckets = (0.001, 0.01, 0.1, 1)
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("t_seconds", "time", ["route"], registry=theirs, buckets=buckets)
    counter = Counter("hits", "hits", ["method", "status"], registry=theirs)
    loop_histogram = LoopHistogram("t_seconds", "time", ("route",), buckets=buckets)
    loop_counter = LoopCounter("hits", "hits", ("method", "status"))
    ours.register(loop_histogram)
    ours.register(loop_counter)
    for route, value in [("/a", 0.0005), ("/a", 0.001), ("/a", 0.05), ("/b", 3.0), ("/a", 1.0), ("/b", 0)]:
        histogram.labels(route).observe(value)
        loop_histogram.labels(route).observe(value)
    for method, status in [("GET", 200), ("GET", 200), ("POST", 404)]:
        counter.labels(method, status).inc()
        loop_counter.labels(method, status).inc()
    assert generate_latest(ours) == generate_latest(theirs)


def test_loop_instruments_show_created_like_prometheus_clients():
    registry = CollectorRegistry()
    histogram = LoopHistogram("t_seconds", "time", ("route",), buckets=(1,))
    counter = LoopCounter("hits", "hits", ("method",))
    registry.register(histogram)
    registry.register(counter)
    histogram.labels("/a").observe(0.5)
    counter.labels("GET").inc()
    assert registry.get_sample_value("t_seconds_created", {"route": "/a"}) > 0
    assert registry.get_sample_value("hits_created", {"method": "GET"}) > 0
    assert registry.get_sample_value("t_seconds_bucket", {"route": "/a", "le": "1.0"}) == 1


# ---- the access log's batched writes ----------------------------------------------------------------------


class _Stream:
    """What a log stream's reader would see: only what was flushed."""

    def __init__(self):
        self.buffered: list[str] = []
        self.seen: list[str] = []

    def write(self, text):
        self.buffered.append(text)

    def flush(self):
        self.seen += self.buffered
        self.buffered = []


async def _until(condition, timeout=3.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.01)


async def test_lines_of_a_burst_are_written_after_a_quiet_period_by_one_flusher_thread(monkeypatch):
    import threading

    from service.logs import BatchedStreamHandler

    started = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: (started.append(thread.name), real_start(thread)))
    stream = _Stream()
    handler = BatchedStreamHandler(stream)
    handler.FLUSH_EVERY = 0.05
    for burst in range(3):
        handler._flush_now()  # as if the process had just flushed: the next lines wait in the buffer
        handler.write_line(f"burst {burst} first")
        handler.write_line(f"burst {burst} second")
        assert f"burst {burst} second\n" not in stream.seen  # batched, not one write per line
        await _until(lambda: f"burst {burst} second\n" in stream.seen)  # written without another line
    assert len(started) == 1  # one flusher for every quiet period (a Timer thread each, before)


def test_a_warning_is_written_at_once():
    import logging

    from service.logs import BatchedStreamHandler

    stream = _Stream()
    handler = BatchedStreamHandler(stream)
    handler._flush_now()
    handler.emit(logging.LogRecord("service", logging.WARNING, __file__, 1, "disk almost full", (), None))
    assert any("disk almost full" in text for text in stream.seen)


# ---- the lean OTLP encoder ------------------------------------------------------------------------------


def test_the_lean_encoder_writes_the_sdks_message_for_every_kind_of_span():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
        encode_spans as sdk_encode,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )
    from opentelemetry.trace import (
        Link,
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        TraceState,
        set_span_in_context,
    )

    from service.otlp_spans import encode_spans

    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "s", "n": 3, "on": True, "l": ("a", "b")},
                                                       schema_url="https://schema/1"))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("lib", "1.2", schema_url="https://scope/2", attributes={"scope": "x"})
    remote = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True,
                         trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v"), ("a", "b")]))
    values = {"text": "x", "empty": "", "negative": -5, "big": 2**62, "zero": 0, "float": -0.25, "false": False,
              "ints": (1, 2, 3), "none": (), "bools": (True, False), "floats": (1.0, 2.5), "texts": ("é", "")}
    with tracer.start_as_current_span("GET /v1/users/{id}", context=set_span_in_context(NonRecordingSpan(remote)),
                                      kind=SpanKind.SERVER, attributes=values) as server:
        server.add_event("event", {"k": "v", "n": 1})
        server.add_event("", {})
        server.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT,
                                          links=[Link(remote, {"n": 1}), Link(SpanContext(5, 6, is_remote=False))]):
            pass
        with provider.get_tracer("other").start_as_current_span("ünïcode", kind=SpanKind.PRODUCER) as other:
            other.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span("consumer", kind=SpanKind.CONSUMER):
        pass
    with tracer.start_as_current_span("internal"):
        pass
    finished = spans.get_finished_spans()
    assert len(finished) == 5
    assert encode_spans(finished) == sdk_encode(finished).SerializePartialToString()


# ---- spans recorded without the SDK's Tracer ----------------------------------------------------------------

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def recorded():
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    from service import tracing

    exporter = InMemorySpanExporter()

    def install(sampler=None):
        tracing.install(SimpleSpanProcessor(exporter), sampler=sampler)
        return exporter

    yield install
    tracing.shutdown()


def _request(status=200, headers=None, inside=()):
    """A request span with `inside` (names of client spans; "!" first: it raises) under it."""
    from service import tracing

    span, token, trace_id = tracing.start_server_span("GET", "/v1/things/{id}", headers or {})
    for name in inside:
        try:
            with tracing.client_span(name.lstrip("!"), "postgresql", **{"db.operation.name": name.lstrip("!")}):
                if name.startswith("!"):
                    raise ValueError("no")
        except ValueError:
            pass
    if span is not None:
        tracing.end_server_span(span, token, status)
    return trace_id


def test_a_recorded_request_holds_what_the_sdks_tracer_would_record(recorded):
    from opentelemetry.trace import SpanKind, StatusCode

    from service.tracing import DEFAULT_SERVICE_NAME

    spans = recorded()  # the default sampler: parentbased_always_on
    trace_id = _request(503, {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "k=v"},
                        inside=("get_thing", "!put_thing"))
    assert trace_id == CALLER_TRACE
    by_name = {s.name: s for s in spans.get_finished_spans()}
    server, sql, failed = by_name["GET /v1/things/{id}"], by_name["get_thing"], by_name["put_thing"]
    assert server.kind == SpanKind.SERVER and server.context.trace_flags.sampled
    assert format(server.context.trace_id, "032x") == CALLER_TRACE and server.context.trace_state.get("k") == "v"
    assert format(server.parent.span_id, "016x") == CALLER_SPAN and server.parent.is_remote
    assert dict(server.attributes) == {"http.request.method": "GET", "http.route": "/v1/things/{id}",
                                       "http.response.status_code": 503}
    assert server.status.status_code == StatusCode.ERROR
    assert server.resource.attributes["service.name"] == DEFAULT_SERVICE_NAME
    assert server.instrumentation_scope.name == "astrowellness-data"
    for child in (sql, failed):
        assert child.kind == SpanKind.CLIENT and child.parent.span_id == server.context.span_id
        assert child.context.trace_id == server.context.trace_id and child.context.span_id != server.context.span_id
        assert server.start_time <= child.start_time <= child.end_time <= server.end_time
    assert dict(sql.attributes) == {"db.system": "postgresql", "db.operation.name": "get_thing"}
    assert sql.status.status_code == StatusCode.UNSET
    assert (failed.status.status_code, failed.status.description) == (StatusCode.ERROR, "ValueError")


def test_a_caller_that_did_not_sample_gets_no_spans_but_its_trace_id(recorded):
    spans = recorded()
    assert _request(headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"}, inside=("x",)) == CALLER_TRACE
    assert spans.get_finished_spans() == ()


def test_a_sampler_of_its_own_is_asked_for_every_span_as_the_sdk_would(recorded):
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class NoWrites(Sampler):
        def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                          trace_state=None):
            decision = Decision.DROP if name.startswith("put_") else Decision.RECORD_AND_SAMPLE
            return SamplingResult(decision, {"sampled.by": "NoWrites"})

        def get_description(self):
            return "NoWrites"

    spans = recorded(NoWrites())
    _request(inside=("get_thing", "put_thing"))
    names = {s.name: dict(s.attributes).get("sampled.by") for s in spans.get_finished_spans()}
    assert names == {"GET /v1/things/{id}": "NoWrites", "get_thing": "NoWrites"}


async def test_an_internal_span_parents_what_it_encloses_and_records_its_error(recorded):
    from opentelemetry.trace import StatusCode

    from service import tracing

    spans = recorded()
    span, token, _ = tracing.start_server_span("POST", "/v1/stripe/webhook", {})
    with pytest.raises(RuntimeError), tracing.span("stripe apply_event") as inner:
        inner.set_attribute("stripe.event.type", "invoice.paid")
        with tracing.client_span("stripe_insert_event", "postgresql"):
            pass
        raise RuntimeError("lost")
    tracing.end_server_span(span, token, 200)
    by_name = {s.name: s for s in spans.get_finished_spans()}
    apply, insert = by_name["stripe apply_event"], by_name["stripe_insert_event"]
    assert apply.parent.span_id == by_name["POST /v1/stripe/webhook"].context.span_id
    assert insert.parent.span_id == apply.context.span_id
    assert apply.attributes["stripe.event.type"] == "invoice.paid"
    assert apply.status.status_code == StatusCode.ERROR
    assert tracing.RECORDING.get() is None
