"""Query-string helpers shared by the handlers: comma lists checked against a whitelist."""

from __future__ import annotations

from ..problems import bad_request


def comma_list(query, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    raw = query.get(name)
    if raw is None:
        return ()
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise bad_request(name, f"unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}" if unknown
                          else "must name at least one field")
    return items


def comma_list_schema(allowed: tuple[str, ...] | list[str]) -> dict:
    """The JSON Schema of what comma_list accepts: known names, comma separated, spaces and empty items
    allowed, at least one name (in /openapi.json)."""
    name = f"({'|'.join(allowed)})"
    return {"type": "string", "pattern": rf"^(\s*,)*\s*{name}\s*(,\s*({name}\s*)?)*$"}


def reject_unknown_params(query, allowed: tuple[str, ...]) -> None:
    for name in query:
        if name not in allowed:
            raise bad_request(name, "is not a query parameter of this route")
