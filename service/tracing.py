"""OpenTelemetry tracing: off unless the standard OTEL_* environment variables turn it on.

Turned on by OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or by
OTEL_TRACES_EXPORTER=otlp|console; OTEL_SDK_DISABLED=true turns it off whatever else is set. The SDK
reads the rest itself: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG),
OTEL_EXPORTER_OTLP_* (headers, timeout, protocol http/protobuf), OTEL_BSP_* (batching).

Spans are our own rather than the contrib instrumentations': they are named by what the service knows
(the route template, the sql/ statement name, the cache operation) and never carry values, and with
tracing off each instrumented place costs one `if TRACER is None` test. The OpenTelemetry packages
are imported only when tracing is on.

    TRACER   the service's tracer, or None when tracing is off (read it as `tracing.TRACER`)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import random

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

    global TRACER, _provider, _root_bound
    shutdown()
    resource = Resource.create({} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: DEFAULT_SERVICE_NAME})
    options = {"resource": resource, "id_generator": _ChosenTraceIds()}
    provider = TracerProvider(**options, sampler=sampler) if sampler else TracerProvider(**options)
    provider.add_span_processor(processor)
    _provider = provider
    _root_bound = _ratio_bound(provider.sampler)
    TRACER = provider.get_tracer("astrowellness-data")


def shutdown() -> None:
    """Export what is buffered and turn tracing off."""
    global TRACER, _provider, _root_bound
    provider, _provider, TRACER, _root_bound = _provider, None, None, None
    if provider is not None:
        provider.shutdown()


# ---- helpers for the instrumented places (each called only when TRACER is not None) ---------------
# The request's span is started and made current by hand (start_span, context.attach) rather than with
# start_as_current_span, whose generator-based context managers cost about as much again per request.

_api = None  # (propagator, SpanKind, context module, set_span_in_context), imported on first use

# The request span of this context while it is recording (sampled), else None. The instrumented places
# (SQL, Redis, bcrypt) read it before anything else: for the 90 % of requests a 10 % sampler leaves out
# that is one ContextVar read, instead of an import and four calls into OpenTelemetry's API to find a
# non-recording current span. Every recording span of the service starts under a request span, so "a
# recording span is current" and "RECORDING is set" are the same thing.
RECORDING: contextvars.ContextVar = contextvars.ContextVar("recording_request_span", default=None)


def _otel_api():
    global _api
    if _api is None:
        from opentelemetry import context
        from opentelemetry.trace import SpanKind, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )

        _api = (TraceContextTextMapPropagator(), SpanKind, context, set_span_in_context)
    return _api


# Sampling a request this service starts (no traceparent) is decided here, before the SDK is called, when
# the sampler is a trace-id ratio (traceidratio, or parentbased_traceidratio for a root): the same rule as
# the SDK's (the trace id's low 64 bits below the bound), on a trace id drawn here. A request left out
# then costs a random number and a comparison instead of a non-recording span made current; a request
# kept goes to the SDK with that trace id (_ChosenTraceIds), whose sampler reaches the same decision.
_root_bound: int | None = None
_chosen_trace_id = 0
_LOW_64 = (1 << 64) - 1


def _ratio_bound(sampler) -> int | None:
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if isinstance(sampler, ParentBased):
        sampler = sampler._root  # the decision for spans without a parent
    return sampler.bound if isinstance(sampler, TraceIdRatioBased) else None


def _draw_trace_id() -> int:
    trace_id = 0
    while not trace_id:
        trace_id = random.getrandbits(128)
    return trace_id


class _ChosenTraceIds:
    """The SDK's random ids, except a root span's trace id when start_server_span chose it."""

    def generate_span_id(self) -> int:
        span_id = 0
        while not span_id:
            span_id = random.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        global _chosen_trace_id
        trace_id, _chosen_trace_id = _chosen_trace_id, 0
        return trace_id or _draw_trace_id()

    def is_trace_id_random(self) -> bool:
        return True


def start_server_span(method: str, route: str, headers):
    """The request's span, current until end_server_span, continuing the caller's W3C traceparent (and
    tracestate). Returns (span, or None when not sampled; token for end_server_span; trace id). A span
    the sampler dropped is not made current: nothing under it would record anyway."""
    global _chosen_trace_id
    has_parent = "traceparent" in headers
    if _root_bound is not None and not has_parent:
        trace_id = random.getrandbits(128) or _draw_trace_id()
        if trace_id & _LOW_64 >= _root_bound:
            return None, None, format(trace_id, "032x")  # not sampled: no span, nothing current
        _chosen_trace_id = trace_id  # start_span below is synchronous: no other request can take it
    propagator, span_kind, context, set_span_in_context = _otel_api()
    try:
        span = TRACER.start_span(f"{method} {route}", context=propagator.extract(headers) if has_parent else None,
                                 kind=span_kind.SERVER, attributes={"http.request.method": method, "http.route": route})
    finally:
        _chosen_trace_id = 0
    if not span.is_recording():  # a caller's unsampled traceparent (parent-based), or another sampler
        return None, None, trace_id_of(span)
    token = (context.attach(set_span_in_context(span)), RECORDING.set(span))
    return span, token, format(span.get_span_context().trace_id, "032x")


def end_server_span(span, token, status: int) -> None:
    """Ends a span start_server_span returned (not None: the caller tests that)."""
    RECORDING.reset(token[1])
    _otel_api()[2].detach(token[0])
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR))
    span.end()


def trace_id_of(span) -> str | None:
    """The 32-hex-digit trace id (also of a span the sampler dropped: the caller's trace id is worth
    logging either way), or None."""
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.trace_id else None


_NOT_RECORDED = contextlib.nullcontext()


def client_span(name: str, system: str, **attributes):
    """A span for one call to PostgreSQL, Redis or the bcrypt pool (kind CLIENT / INTERNAL) inside a
    recording request; nothing otherwise (a request the sampler dropped would drop its children too, so
    building them would be work for nothing). Callers on the hot path test `RECORDING.get()` first."""
    if RECORDING.get() is None:
        return _NOT_RECORDED
    return _ChildSpan(name, system, attributes)


class _ChildSpan:
    """start_span + end, without start_as_current_span's generator-based context managers (a third of a
    traced request's tracing time in the profile). Not made current: nothing is traced inside one SQL
    statement, Redis call or bcrypt job, so attaching its context and detaching it again (a new Context
    and two ContextVar operations) would serve no span."""

    __slots__ = ("attributes", "kind", "name", "span")

    def __init__(self, name, system, attributes):
        span_kind = _otel_api()[1]
        self.name = name
        if system == "bcrypt":
            self.kind, self.attributes = span_kind.INTERNAL, {"service.component": system, **attributes}
        else:
            self.kind, self.attributes = span_kind.CLIENT, {"db.system": system, **attributes}

    def __enter__(self):
        self.span = TRACER.start_span(self.name, kind=self.kind, attributes=self.attributes)
        return self.span

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            from opentelemetry.trace import Status, StatusCode

            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        self.span.end()
        return False


def span(name: str, **attributes):
    """An internal span, current while it lasts, inside a recording request; else a no-op context manager
    (for code off the hot path)."""
    if TRACER is None or RECORDING.get() is None:
        return _NOT_RECORDED
    return TRACER.start_as_current_span(name, attributes=attributes)
