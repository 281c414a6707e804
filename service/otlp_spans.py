"""OTLP/HTTP span export with a lean protobuf encoder (tracing.py installs it for OTEL_TRACES_EXPORTER=otlp).

The SDK's exporter builds one Python protobuf object per span, attribute and value, copies each into its
parent, and hashes the resource (a JSON dump of its attributes) once per span: ~3,300 interpreter steps
per span on the exporter's thread, which holds the GIL meanwhile, i.e. as much again as the request's
spans cost to record (bench/RESULTS.md, "Tracing overhead"). This encoder writes the same message (the
same fields and values: tests/test_tracing.py compares both on every kind of span, event, link and value)
straight into bytes, with the resource and scope encoded once per batch and attribute pairs cached.

Transport, retries, headers, TLS and compression stay the SDK's (OTLPSpanExporter); only the encoding
differs. Should the SDK's exporter change shape (its `_client`), export falls back to the SDK's own.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

log = logging.getLogger("service.tracing")

_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack

# Span.flags (SpanFlags in trace.proto): "the context says whether it is remote", and "it is remote".
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


def _varint(n: int) -> bytes:
    if 0 <= n < 0x80:
        return bytes((n,))
    if n < 0:  # int64: ten bytes of two's complement
        n &= 0xFFFF_FFFF_FFFF_FFFF
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes, sub-message): tag, length, payload."""
    size = len(payload)
    return tag + (bytes((size,)) if size < 0x80 else _varint(size)) + payload


def _text(tag: bytes, text: str) -> bytes:
    return _field(tag, text.encode("utf-8"))


# ---- common.proto: AnyValue, KeyValue --------------------------------------------------------------------

def _any_value(value) -> bytes:
    """The AnyValue message of one attribute value, as the SDK's encoder types it (bool before int, str and
    bytes before other sequences). Inside the oneof every value is written, defaults included."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _text(b"\x0a", value)
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: str, value) -> bytes:
    return _text(b"\x0a", key) + _field(b"\x12", _any_value(value))


_pairs: dict[tuple, bytes] = {}  # (key, value) -> the encoded KeyValue field, for values that repeat
_MAX_PAIRS = 4096


def _attributes(tag: bytes, attributes) -> list[bytes]:
    """One `tag` field per attribute. Pairs with a text value (routes, methods, statement names) come from
    a cache; a value the SDK's encoder would refuse is left out and logged, as it does."""
    if not attributes:
        return []
    fields = []
    for key, value in attributes.items():
        cacheable = type(value) is str
        if cacheable:
            encoded = _pairs.get((key, value))
            if encoded is not None:
                fields.append(encoded)
                continue
        try:
            encoded = _field(tag, _key_value(key, value))
        except Exception as error:  # noqa: BLE001 - the SDK's encoder skips such an attribute too
            log.exception("Failed to encode key %s: %s", key, error)
            continue
        if cacheable and tag == b"\x4a":  # span attributes (field 9): the ones that repeat
            if len(_pairs) >= _MAX_PAIRS:
                _pairs.clear()
            _pairs[(key, value)] = encoded
        fields.append(encoded)
    return fields


# ---- trace.proto: Span, ScopeSpans, ResourceSpans ----------------------------------------------------------
# Enum members by identity (an Enum's hash is a Python call): Span.kind (field 6; the proto's enum counts
# from UNSPECIFIED, the API's from INTERNAL) and Status.code (field 3; 0, UNSET, is not written).
_KINDS = {id(kind): b"\x30" + _varint(kind.value + 1) for kind in SpanKind}
_STATUS_CODES = {id(code): b"\x18" + _varint(code.value) if code.value else b"" for code in StatusCode}

def _flags(context) -> bytes:
    """Span.flags (field 16, fixed32) / Link.flags (field 6): as the SDK's encoder, only the remote bits."""
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if context is not None and context.is_remote else 0)
    return _FIXED32(flags)


def _span(span) -> bytes:
    context = span.get_span_context()
    parts = [b"\x0a\x10" + context.trace_id.to_bytes(16, "big"), b"\x12\x08" + context.span_id.to_bytes(8, "big")]
    trace_state = context.trace_state
    if trace_state:
        parts.append(_text(b"\x1a", ",".join(f"{k}={v}" for k, v in trace_state.items())))
    parent = span.parent
    if parent:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_text(b"\x2a", span.name))
    parts.append(_KINDS[id(span.kind)])
    parts.append(b"\x39" + _FIXED64(span.start_time))
    parts.append(b"\x41" + _FIXED64(span.end_time))
    parts += _attributes(b"\x4a", span.attributes)
    if span.dropped_attributes:
        parts.append(b"\x50" + _varint(span.dropped_attributes))
    for event in span.events:
        body = [b"\x09" + _FIXED64(event.timestamp)]
        if event.name:
            body.append(_text(b"\x12", event.name))
        body += _attributes(b"\x1a", event.attributes)
        if event.dropped_attributes:
            body.append(b"\x20" + _varint(event.dropped_attributes))
        parts.append(_field(b"\x5a", b"".join(body)))
    if span.dropped_events:
        parts.append(b"\x60" + _varint(span.dropped_events))
    for link in span.links:
        body = [b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big"),
                b"\x12\x08" + link.context.span_id.to_bytes(8, "big")]
        body += _attributes(b"\x22", link.attributes)
        if link.dropped_attributes:
            body.append(b"\x28" + _varint(link.dropped_attributes))
        body.append(b"\x35" + _flags(link.context))
        parts.append(_field(b"\x6a", b"".join(body)))
    if span.dropped_links:
        parts.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    if status is not None:
        code = _STATUS_CODES[id(status.status_code)]
        parts.append(_field(b"\x7a", _text(b"\x12", status.description) + code if status.description else code))
    parts.append(b"\x85\x01" + _flags(parent))
    return _field(b"\x12", b"".join(parts))  # as ScopeSpans.spans (field 2)


def _scope(scope) -> bytes:
    if scope is None:
        return _field(b"\x0a", b"")
    body = []
    if scope.name:
        body.append(_text(b"\x0a", scope.name))
    if scope.version:
        body.append(_text(b"\x12", scope.version))
    body += _attributes(b"\x1a", scope.attributes)
    return _field(b"\x0a", b"".join(body))


def encode_spans(spans: Sequence) -> bytes:
    """The ExportTraceServiceRequest of `spans`, serialized: spans grouped by resource, then by
    instrumentation scope, in the order they come (as the SDK's encoder groups them)."""
    groups: dict[int, tuple] = {}  # id(resource) -> (resource, {id(scope): (scope, [encoded spans])})
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope or None
        group = groups.get(id(resource))
        if group is None:
            group = groups[id(resource)] = (resource, {})
        scopes = group[1]
        entry = scopes.get(id(scope))
        if entry is None:
            entry = scopes[id(scope)] = (scope, [])
        entry[1].append(_span(span))
    out = []
    for resource, scopes in groups.values():
        body = [_field(b"\x0a", b"".join(_attributes(b"\x0a", resource.attributes)))]
        for scope, encoded in scopes.values():
            scope_spans = [_scope(scope), *encoded]
            if scope is not None and scope.schema_url:
                scope_spans.append(_text(b"\x1a", scope.schema_url))
            body.append(_field(b"\x12", b"".join(scope_spans)))
        if resource.schema_url:
            body.append(_text(b"\x1a", resource.schema_url))
        out.append(_field(b"\x0a", b"".join(body)))
    return b"".join(out)


class LeanOTLPSpanExporter(OTLPSpanExporter):
    """OTLPSpanExporter with encode_spans above instead of the SDK's protobuf objects; the rest of export()
    is the SDK's (its metrics, size limit, client with retries), which it reads from the exporter."""

    def export(self, spans) -> SpanExportResult:
        client, metrics = getattr(self, "_client", None), getattr(self, "_metrics", None)
        limit = getattr(self, "_max_request_size", None)
        if self._shutdown or not hasattr(client, "export") or not hasattr(metrics, "export_operation") \
                or limit is None:
            return super().export(spans)  # shut down (it warns), or an SDK this was not written for
        with metrics.export_operation(len(spans)) as result:
            try:
                data = encode_spans(spans)
            except Exception as error:  # noqa: BLE001 - as the SDK: the batch is lost, not the thread
                log.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if 0 < limit < len(data):
                log.warning("Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                            len(data), limit)
                result.error = ValueError(f"span batch of {len(data)} bytes exceeds max_request_size {limit}")
                return SpanExportResult.FAILURE
            sent = client.export(data)
            if not sent.success:
                result.error = sent.error
                if sent.status_code is not None:
                    result.error_attrs = {"http.response.status_code": sent.status_code}
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
