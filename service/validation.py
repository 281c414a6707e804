"""Every invalid field of a refused body, in our own words.

msgspec stops at the first error and says it in its own terms (``Expected `str` matching regex ...``).
When it refuses a body, the body is walked again against the same Struct (through msgspec.inspect, so
the rules are the schema's own and cannot drift) and every field that breaks one is reported.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import msgspec
from msgspec import inspect as mi

from .problems import FieldError, Problem, from_validation_error
from .schemas import CACHE_TAG_PATTERN, EMAIL_PATTERN, TOKEN_PATTERN

# Patterns of schemas.py, said in words (a regular expression is not a message for a person).
PATTERN_WORDS = {
    EMAIL_PATTERN: "must be an e-mail address",
    TOKEN_PATTERN: "must be printable ASCII without spaces",
    CACHE_TAG_PATTERN: "must be a known cache tag: user:<userId> or chart:<userId>",
}
_KIND_WORDS = {
    mi.StrType: "a string", mi.IntType: "an integer", mi.FloatType: "a number", mi.BoolType: "true or false",
    mi.StructType: "an object", mi.DictType: "an object", mi.ListType: "a list",
    mi.DateTimeType: "a date-time with a time zone (RFC 3339)", mi.NoneType: "null",
}
_type_infos: dict[type, mi.Type] = {}
# A 1 MB batch of bad rows has tens of thousands of errors: the answer lists the first MAX_LISTED (in
# body order) and its detail counts them all, so a hostile body cannot make a multi-megabyte answer.
MAX_LISTED = 100
DETAIL_NAMES = 5


def refused_body(raw: bytes, struct: type, exc: msgspec.ValidationError) -> Problem:
    """The 422 for a body msgspec refused, naming every invalid field."""
    try:
        errors = field_errors(msgspec.json.decode(raw), struct)
    except (msgspec.DecodeError, RecursionError):
        errors = []
    if not errors:  # a rule this walk does not know: msgspec's first error, translated
        return from_validation_error(exc)
    if len(errors) == 1:
        detail = f"{errors[0].field}: {errors[0].message}"
    else:
        named = ", ".join(e.field for e in errors[:DETAIL_NAMES])
        more = f" and {len(errors) - DETAIL_NAMES} more" if len(errors) > DETAIL_NAMES else ""
        detail = f"{len(errors)} fields are invalid: {named}{more}"
    return Problem(422, detail, errors[:MAX_LISTED])


def field_errors(document: Any, struct: type) -> list[FieldError]:
    """The errors of a decoded JSON document against `struct`, in document order."""
    info = _type_infos.get(struct)
    if info is None:
        info = _type_infos[struct] = mi.type_info(struct)
    errors: list[FieldError] = []
    _check(document, info, "", errors)
    return errors


def _unwrap(t: mi.Type) -> mi.Type:
    return t.type if isinstance(t, mi.Metadata) else t


def _check(value: Any, t: mi.Type, path: str, errors: list[FieldError]) -> None:
    t = _unwrap(t)
    where = path or "body"
    if isinstance(t, mi.AnyType):
        return
    if isinstance(t, mi.UnionType):
        members = [_unwrap(m) for m in t.types]
        if value is None and any(isinstance(m, mi.NoneType) for m in members):
            return
        candidates = [m for m in members if not isinstance(m, mi.NoneType)]
        found: list[FieldError] = []
        for member in candidates:
            found = []
            _check(value, member, path, found)
            if not found:
                return
        if len(candidates) == 1:
            errors.extend(found)
        else:
            errors.append(FieldError(where, "must be " + " or ".join(_kind(m) for m in members)))
        return
    if isinstance(t, mi.EnumType):
        allowed = [m.value for m in t.cls]
        if value not in allowed:
            errors.append(FieldError(where, "must be one of " + ", ".join(map(str, allowed))))
        return
    if isinstance(t, mi.LiteralType):
        if value not in t.values:
            errors.append(FieldError(where, "must be one of " + ", ".join(map(str, t.values))))
        return
    if not _is_kind(value, t):
        errors.append(FieldError(where, f"must be {_kind(t)}" + (", not null" if value is None else "")))
        return
    if isinstance(t, mi.StrType):
        _check_text(value, t, where, errors)
    elif isinstance(t, (mi.IntType, mi.FloatType)):
        _check_number(value, t, where, errors)
    elif isinstance(t, mi.DateTimeType):
        try:
            parsed = msgspec.convert(value, datetime.datetime)
        except msgspec.ValidationError:
            errors.append(FieldError(where, "must be an RFC 3339 date-time, e.g. 2026-01-02T03:04:05Z"))
            return
        if t.tz and parsed.tzinfo is None:
            errors.append(FieldError(where, "must carry a time zone (Z or +hh:mm)"))
    elif isinstance(t, mi.ListType):
        _check_size(len(value), t, where, errors, "items")
        for i, item in enumerate(value):
            _check(item, t.item_type, f"{path}[{i}]", errors)
    elif isinstance(t, mi.StructType):
        _check_object(value, t, path, errors)


def _check_object(value: dict, t: mi.StructType, path: str, errors: list[FieldError]) -> None:
    known = {f.encode_name: f for f in t.fields}
    for name, item in value.items():
        f = known.get(name)
        where = f"{path}.{name}" if path else name
        if f is None:
            if t.forbid_unknown_fields:
                errors.append(FieldError(where, "is not a known field"))
            continue
        _check(item, f.type, where, errors)
    for name, f in known.items():
        if f.required and name not in value:
            errors.append(FieldError(f"{path}.{name}" if path else name, "is required"))


def _check_text(value: str, t: mi.StrType, where: str, errors: list[FieldError]) -> None:
    size = len(value)
    if t.min_length and size < t.min_length:
        errors.append(FieldError(where, "must not be empty" if t.min_length == 1
                                 else f"must be at least {t.min_length} characters"))
    elif t.max_length is not None and size > t.max_length:
        errors.append(FieldError(where, f"must be at most {t.max_length} characters"))
    elif t.pattern is not None and not re.search(t.pattern, value):
        errors.append(FieldError(where, PATTERN_WORDS.get(t.pattern, "is not in the expected format")))


def _check_number(value, t, where: str, errors: list[FieldError]) -> None:
    if t.ge is not None and value < t.ge:
        errors.append(FieldError(where, f"must be at least {t.ge}"))
    elif t.gt is not None and value <= t.gt:
        errors.append(FieldError(where, f"must be greater than {t.gt}"))
    elif t.le is not None and value > t.le:
        errors.append(FieldError(where, f"must be at most {t.le}"))
    elif t.lt is not None and value >= t.lt:
        errors.append(FieldError(where, f"must be less than {t.lt}"))


def _check_size(size: int, t, where: str, errors: list[FieldError], unit: str) -> None:
    if t.min_length and size < t.min_length:
        errors.append(FieldError(where, f"must have at least {t.min_length} {unit}"))
    elif t.max_length is not None and size > t.max_length:
        errors.append(FieldError(where, f"must have at most {t.max_length} {unit}"))


def _is_kind(value: Any, t: mi.Type) -> bool:
    if isinstance(t, (mi.StrType, mi.DateTimeType)):
        return isinstance(value, str)
    if isinstance(t, mi.BoolType):
        return isinstance(value, bool)
    if isinstance(t, mi.IntType):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(t, mi.FloatType):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(t, (mi.StructType, mi.DictType)):
        return isinstance(value, dict)
    if isinstance(t, mi.ListType):
        return isinstance(value, list)
    if isinstance(t, mi.NoneType):
        return value is None
    return True  # a type no body uses: msgspec's own check stands


def _kind(t: mi.Type) -> str:
    t = _unwrap(t)
    if isinstance(t, mi.EnumType):
        return "one of " + ", ".join(str(m.value) for m in t.cls)
    return _KIND_WORDS.get(type(t), "a valid value")

