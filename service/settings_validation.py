"""Turn raw setting values into a Settings struct, or into one line per bad value naming its variable.

Generic on purpose: a field's range or choices are declared where the field is (msgspec `Meta` on an
`Annotated` type, or a `Literal`), and this module reads them back with msgspec.inspect, so a setting
added later gets the same treatment (at least its type is checked and named) without touching this.
"""

from __future__ import annotations

import typing

import msgspec
from msgspec import inspect as mi


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable, one line per problem."""


def _number_range(t) -> str:
    kind = "an integer" if isinstance(t, mi.IntType) else "a number"
    low = (t.ge, "at least") if t.ge is not None else (t.gt, "more than") if t.gt is not None else None
    high = (t.le, "at most") if t.le is not None else (t.lt, "less than") if t.lt is not None else None
    if low and high and t.ge is not None and t.le is not None:
        return f"{t.ge}-{t.le}"
    bounds = [f"{word} {value}" for value, word in filter(None, (low, high))]
    return f"{kind} " + " and ".join(bounds) if bounds else kind


def expectation(t) -> str:
    """What a value of msgspec type-info `t` must look like, in words."""
    if isinstance(t, mi.LiteralType):
        return "one of " + ", ".join(str(v) for v in t.values)
    if isinstance(t, (mi.IntType, mi.FloatType)):
        return _number_range(t)
    if isinstance(t, mi.BoolType):
        return "true or false"
    if isinstance(t, mi.UnionType):
        others = [x for x in t.types if not isinstance(x, mi.NoneType)]
        return " or ".join(expectation(x) for x in others) + (" (or unset)" if len(others) < len(t.types) else "")
    if isinstance(t, mi.StrType):
        return "text"
    return type(t).__name__


def _match_choice_case(value, t):
    """ENVIRONMENT=Production and LOG_LEVEL=info mean what they say: choices match case-insensitively."""
    if isinstance(t, mi.LiteralType) and isinstance(value, str):
        for choice in t.values:
            if isinstance(choice, str) and choice.lower() == value.lower():
                return choice
    return value


def convert(cls: type, values: dict[str, typing.Any], sources: dict[str, str]):
    """Build `cls` from `values`; `sources[name]` says where a value came from (for the message)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    info = {f.name: f.type for f in mi.type_info(cls).fields}
    converted, problems = {}, []
    for name, value in values.items():
        if name not in hints:
            continue  # keys of other versions' defaults files are ignored, as before
        value = _match_choice_case(value, info[name])
        try:
            # strict=False lets "12" become 12 and "1"/"true" become True, as env values are strings.
            converted[name] = msgspec.convert(value, hints[name], strict=False)
        except msgspec.ValidationError:
            where = sources.get(name, name.upper())
            problems.append(f"{where} must be {expectation(info[name])}, got {value}")
    if problems:
        raise SettingsError("\n".join(problems))
    return cls(**converted)
