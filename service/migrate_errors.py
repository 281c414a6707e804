"""The one error type every `migrate` (and operational command) failure ends in."""

from __future__ import annotations


class MigrateError(Exception):
    """A problem the operator must fix; shown as `error: <message>` and, when known, `hint: <hint>`."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint
