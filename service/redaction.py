"""Secrets never reach a log line: a logging filter that redacts them from every record.

The service's own lines name only safe fields, but other code logs what it was given: aiohttp's server
logs a malformed request line or header verbatim (`Authorization: Bearer <token>` with a stray control
byte), a traceback's text can quote a header or a URL with a token in its query string, and Python
warnings carry whatever text their author chose. The filter sits on the log handler, so every logger
(aiohttp.server, aiohttp.access, aiohttp.web, aiohttp.internal, py.warnings, asyncio, ours) passes
through it; it rewrites the message, its arguments and any traceback text before formatting.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
SECRET_HEADERS = ("authorization", "proxy-authorization", "stripe-signature", "cookie", "set-cookie",
                  "x-api-key", "x-auth-token")
SECRET_PARAMS = ("token", "access_token", "refresh_token", "id_token", "sessiontoken", "session_token",
                 "password", "secret", "api_key", "apikey", "key", "code", "signature", "sig", "client_secret")

# A header as text or in a repr: `Authorization: Bearer x`, `'Authorization': 'Bearer x'`,
# b'Stripe-Signature: t=1,v1=ab\r\n'. The value runs to the end of the line, a quote, or an escaped
# line break as a repr writes it ("\r", "\n").
_HEADER = re.compile(
    r"(?i)(\b(?:" + "|".join(re.escape(h) for h in SECRET_HEADERS) + r")\b['\"]?\s*[:=]\s*['\"]?)"
    r"(?:(?!\\[rn])[^'\"\r\n])+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_QUERY = re.compile(r"(?i)([?&;](?:" + "|".join(SECRET_PARAMS) + r")=)[^&;#\s'\"]*")
# Well-known secret shapes, wherever they appear: Stripe keys and webhook secrets, our ciphertext.
_SHAPES = re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9]+|\benc:v[12]:[^\s'\"]+")


def redact(text: str) -> str:
    text = _HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + " " + REDACTED, text)
    text = _QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    return _SHAPES.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    def __init__(self, formatter: logging.Formatter | None = None):
        super().__init__()
        self._formatter = formatter or logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not hide the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), ()
        if record.exc_info:
            # The traceback's text, redacted once here; formatters use exc_text when it is set.
            record.exc_text = redact(self._formatter.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in list(vars(record).items()):
            if name in _EXTRA_SAFE or not isinstance(value, str):
                continue
            setattr(record, name, redact(value))
        return True


_EXTRA_SAFE = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
