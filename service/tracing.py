"""OpenTelemetry tracing: off unless the standard OTEL_* environment variables turn it on.

Turned on by OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or by
OTEL_TRACES_EXPORTER=otlp|console; OTEL_SDK_DISABLED=true turns it off whatever else is set. The SDK
reads the rest itself: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG),
OTEL_EXPORTER_OTLP_* (headers, timeout, protocol http/protobuf), OTEL_BSP_* (batching).

Spans are our own rather than the contrib instrumentations': they are named by what the service knows
(the route template, the sql/ statement name, the cache operation) and never carry values, and with
tracing off each instrumented place costs one `if TRACER is None` test. They are recorded here and
handed to the SDK's span processor as finished ReadableSpans (see "recording the service's spans"
below); sampling, resource, batching and export are the SDK's. The OpenTelemetry packages are imported
only when tracing is on.

    TRACER      the service's tracer, or None when tracing is off (read it as `tracing.TRACER`)
    RECORDING   the recording span of this context (None: nothing to record under)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import random
import time

log = logging.getLogger("service.tracing")

TRACER = None
_provider = None
_EXPORTERS = ("otlp", "console")
DEFAULT_SERVICE_NAME = "astrowellness-data"


class TracingConfigError(ValueError):
    """OTEL_* variables that ask for something this service cannot do (e.g. a gRPC or unknown exporter)."""


def wanted(env) -> bool:
    """Whether the environment asks for traces (OpenTelemetry's own default, always-on OTLP to
    localhost, would make every deployment without a collector log export errors)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def validate_env(env=None) -> str | None:
    """The exporter the OTEL_* variables ask for (None: tracing off); TracingConfigError when they ask
    for one this service lacks. Checked before serving (and by `doctor`), so a typo stops the start."""
    env = os.environ if env is None else env
    if not wanted(env):
        return None
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter_name not in _EXPORTERS:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER={exporter_name!r}: this service exports otlp or console")
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    if protocol and protocol != "http/protobuf":
        raise TracingConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this service sends http/protobuf")
    return exporter_name


def configure_from_env(env=None) -> bool:
    """Install a tracer provider as the OTEL_* variables describe; returns whether tracing is on.
    Call it in each serving process (after a fork: the batch exporter is a thread)."""
    env = os.environ if env is None else env
    exporter_name = validate_env(env)
    if exporter_name is None:
        return False
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if exporter_name == "otlp":
        from .otlp_spans import LeanOTLPSpanExporter

        # The SDK's OTLPSpanExporter (reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT, ...)
        # with a leaner encoder of the same messages (otlp_spans.py).
        exporter = LeanOTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    install(BatchSpanProcessor(exporter))
    log.info("tracing on", extra={"exporter": exporter_name,
                                  "sampler": env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on")})
    return True


def install(processor, sampler=None) -> None:
    """Trace through `processor` (tests pass a SimpleSpanProcessor(InMemorySpanExporter())). The
    sampler defaults to OTEL_TRACES_SAMPLER's. Our own provider, not the global one: the global can
    be set only once per process, and tests install several."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    global TRACER, _provider, _recorder
    shutdown()
    resource = Resource.create({} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: DEFAULT_SERVICE_NAME})
    provider = TracerProvider(resource=resource, sampler=sampler) if sampler else TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    _provider = provider
    _recorder = _Recorder(processor, provider)
    TRACER = provider.get_tracer(SCOPE_NAME)


def shutdown() -> None:
    """Export what is buffered and turn tracing off."""
    global TRACER, _provider, _recorder
    provider, _provider, TRACER, _recorder = _provider, None, None, None
    if provider is not None:
        provider.shutdown()


# ---- recording the service's spans ---------------------------------------------------------------------
# The request's spans (server, SQL, Redis, bcrypt) are recorded here and handed to the span processor as
# the SDK's ReadableSpan when they end, instead of going through the SDK's Tracer: its mutable span takes
# locks, bounded attribute and event collections, a sampler call per child and a copy at the end, which
# made a sampled W1 request's two spans cost ~45 µs of CPU against ~5 µs this way, and a 10 % sampled
# service 15-20 % more CPU per request than with tracing off (bench/RESULTS.md, "Tracing overhead").
# What a span holds is the SDK's: ids, flags, parent, resource, instrumentation scope, kind, attributes,
# status, start and end times (tests/test_tracing.py reads them through InMemorySpanExporter); the SDK's
# per-span attribute limits (128 by default) do not apply to these few fixed attributes, and span
# processors' on_start is not called (the SDK's batch and simple processors do nothing there).
#
# No span is made current in OpenTelemetry's context: the service has no instrumentation that would read
# it. RECORDING carries the current parent instead: the request span, or the internal span() around
# work with children of its own (Stripe events).

SCOPE_NAME = "astrowellness-data"
_recorder: _Recorder | None = None
# (propagator, SpanKind, Status, StatusCode, ReadableSpan, SpanContext, Status(UNSET)): imported on first use
_api = None

# The recording span children start under in this context (the request's, or span()'s), else None: tracing
# off, outside a request, or a request the sampler left out. The instrumented places (SQL, Redis, bcrypt)
# read it before anything else: for the 90 % of requests a 10 % sampler leaves out that is one ContextVar
# read.
RECORDING: contextvars.ContextVar = contextvars.ContextVar("recording_span", default=None)

_LOW_64 = (1 << 64) - 1


def _otel_api():
    global _api
    if _api is None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )

        _api = (TraceContextTextMapPropagator(), SpanKind, Status, StatusCode, ReadableSpan, SpanContext,
                Status(StatusCode.UNSET))
    return _api


class _Recorder:
    """What recording a span needs from the installed provider, looked up once."""

    def __init__(self, processor, provider):
        from opentelemetry.sdk.trace.sampling import (
            ParentBased,
            StaticSampler,
            TraceIdRatioBased,
        )
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import TraceFlags

        _otel_api()
        self.processor = processor
        self.resource = provider.resource
        self.scope = InstrumentationScope(SCOPE_NAME)  # what provider.get_tracer(SCOPE_NAME) records
        self.sampler = sampler = provider.sampler
        root = getattr(sampler, "_root", None) if isinstance(sampler, ParentBased) else sampler  # no parent
        # A trace-id ratio decides a root span here, by the SDK's rule on a trace id drawn here: a request
        # left out costs a random number and a comparison.
        self.root_bound = root.bound if isinstance(root, TraceIdRatioBased) else None
        # Whether the SDK's sampler would keep every child of a recorded span: true of every sampler
        # OTEL_TRACES_SAMPLER names (a ratio decides by trace id, as it did for the parent; parent-based
        # ones follow a sampled local parent). Another sampler is asked for each child, as the SDK would.
        local_parent = getattr(sampler, "_local_parent_sampled", None)  # SDK-private: if renamed, ask
        self.children_follow = isinstance(sampler, (StaticSampler, TraceIdRatioBased)) or (
            isinstance(sampler, ParentBased) and isinstance(local_parent, StaticSampler)
            and local_parent.get_description() == "AlwaysOnSampler")
        self.sampled_flags = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)


def _new_id(bits: int) -> int:
    span_id = 0
    while not span_id:
        span_id = random.getrandbits(bits)
    return span_id


class RecordingSpan:
    """A span being recorded; ended, it goes to the span processor as the SDK's ReadableSpan."""

    __slots__ = ("attributes", "context", "kind", "name", "parent", "start_time", "status")

    def __init__(self, name: str, kind, context, parent, attributes: dict):
        self.name, self.kind, self.context, self.parent = name, kind, context, parent
        self.attributes = attributes
        self.status = None
        self.start_time = time.time_ns()

    def get_span_context(self):
        return self.context

    def is_recording(self) -> bool:
        return True

    def set_attribute(self, key: str, value) -> None:
        self.attributes[key] = value

    def set_status(self, status) -> None:
        self.status = status

    def end(self) -> None:
        recorder = _recorder
        if recorder is None:  # tracing was switched off meanwhile
            return
        recorder.processor.on_end(_api[4](
            name=self.name, context=self.context, parent=self.parent, resource=recorder.resource,
            attributes=self.attributes, kind=self.kind, status=self.status or _api[6],
            start_time=self.start_time, end_time=time.time_ns(), instrumentation_scope=recorder.scope))


def _child_context(recorder: _Recorder, parent, name: str, kind, attributes: dict):
    """The SpanContext of a child of the recording span `parent`, or None when the sampler drops it."""
    span_context = _api[5]
    trace_state = parent.context.trace_state
    if not recorder.children_follow:
        from opentelemetry.trace import NonRecordingSpan, set_span_in_context

        result = recorder.sampler.should_sample(set_span_in_context(NonRecordingSpan(parent.context)),
                                                parent.context.trace_id, name, kind, attributes)
        if not result.decision.is_sampled():
            return None
        attributes.update(result.attributes)
        trace_state = result.trace_state
    return span_context(parent.context.trace_id, _new_id(64), False, parent.context.trace_flags, trace_state)


def start_server_span(method: str, route: str, headers):
    """The request's span, the parent of what the request records until end_server_span, continuing the
    caller's W3C traceparent (and tracestate). Returns (span, or None when not sampled; token for
    end_server_span; trace id)."""
    recorder = _recorder
    has_parent = "traceparent" in headers
    if recorder.root_bound is not None and not has_parent:
        trace_id = random.getrandbits(128) or _new_id(128)
        if trace_id & _LOW_64 >= recorder.root_bound:
            return None, None, format(trace_id, "032x")  # not sampled: no span, nothing to parent
        span_context = _api[5](trace_id, _new_id(64), False, recorder.sampled_flags)
        span = RecordingSpan(f"{method} {route}", _api[1].SERVER, span_context, None,
                             {"http.request.method": method, "http.route": route})
        return span, RECORDING.set(span), format(trace_id, "032x")
    return _sampled_server_span(recorder, method, route, headers, has_parent)


def _sampled_server_span(recorder: _Recorder, method: str, route: str, headers, has_parent: bool):
    """start_server_span with a caller's traceparent, or a sampler that is not a trace-id ratio: the
    sampler decides, as the SDK's Tracer would ask it."""
    from opentelemetry.trace import TraceFlags, get_current_span

    propagator, span_kind, _, _, _, span_context_class, _ = _api
    parent_context = propagator.extract(headers) if has_parent else None
    parent = get_current_span(parent_context).get_span_context() if has_parent else None
    if parent is not None and not parent.is_valid:
        parent = None
    trace_id = parent.trace_id if parent is not None else _new_id(128)
    name, attributes = f"{method} {route}", {"http.request.method": method, "http.route": route}
    result = recorder.sampler.should_sample(parent_context, trace_id, name, span_kind.SERVER, attributes)
    if not result.decision.is_sampled():
        return None, None, format(trace_id, "032x")  # the caller's trace id is worth logging either way
    flags = recorder.sampled_flags if parent is None or parent.trace_flags.random_trace_id \
        else TraceFlags(TraceFlags.SAMPLED)
    span_context = span_context_class(trace_id, _new_id(64), False, flags, result.trace_state)
    span = RecordingSpan(name, span_kind.SERVER, span_context, parent, {**attributes, **result.attributes})
    return span, RECORDING.set(span), format(trace_id, "032x")


def end_server_span(span, token, status: int) -> None:
    """Ends a span start_server_span returned (not None: the caller tests that)."""
    RECORDING.reset(token)
    span.attributes["http.response.status_code"] = status
    if status >= 500:
        span.status = _api[2](_api[3].ERROR)
    span.end()


_NOT_RECORDED = contextlib.nullcontext()


def client_span(name: str, system: str, **attributes):
    """A span for one call to PostgreSQL, Redis or the bcrypt pool (kind CLIENT / INTERNAL) under the
    recording span of this context; nothing outside one (a request the sampler dropped would drop its
    children too, so building them would be work for nothing). Hot-path callers test `RECORDING.get()`
    first."""
    if RECORDING.get() is None or _recorder is None:
        return _NOT_RECORDED
    return _ChildSpan(name, system, attributes)


class _ChildSpan:
    """A context manager recording one child span: started on enter, ended on exit (an error status for
    an exception other than cancellation)."""

    __slots__ = ("attributes", "kind", "name", "span")

    def __init__(self, name, system, attributes):
        span_kind = _api[1]
        self.name = name
        if system == "bcrypt":
            self.kind, self.attributes = span_kind.INTERNAL, {"service.component": system, **attributes}
        else:
            self.kind, self.attributes = span_kind.CLIENT, {"db.system": system, **attributes}

    def __enter__(self):
        parent = RECORDING.get()
        context = _child_context(_recorder, parent, self.name, self.kind, self.attributes)
        self.span = RecordingSpan(self.name, self.kind, context, parent.context, self.attributes) \
            if context is not None else None
        return self.span

    def __exit__(self, exc_type, exc, tb):
        span = self.span
        if span is not None:
            if exc is not None and not isinstance(exc, asyncio.CancelledError):
                span.status = _api[2](_api[3].ERROR, type(exc).__name__)
            span.end()
        return False


@contextlib.contextmanager
def span(name: str, **attributes):
    """An internal span under the recording span of this context, the parent of what is recorded inside
    it; else nothing (yields None). For code off the hot path (a Stripe event's application)."""
    parent = RECORDING.get() if TRACER is not None else None
    recorder = _recorder
    if parent is None or recorder is None:
        yield None
        return
    kind = _api[1].INTERNAL
    context = _child_context(recorder, parent, name, kind, attributes)
    if context is None:
        yield None
        return
    inner = RecordingSpan(name, kind, context, parent.context, attributes)
    token = RECORDING.set(inner)
    try:
        yield inner
    except BaseException as exc:
        if not isinstance(exc, asyncio.CancelledError):
            inner.status = _api[2](_api[3].ERROR, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        RECORDING.reset(token)
        inner.end()
