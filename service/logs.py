"""JSON-line logs. Only named fields are written (never whole headers or bodies), so no secret leaks."""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import threading
import time

import msgspec

_encode = msgspec.json.Encoder().encode
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["trace"] = self.formatException(record.exc_info)
        return _encode(line).decode()


class BatchedStreamHandler(logging.StreamHandler):
    """Info lines (one access line per request) are flushed at most every FLUSH_EVERY seconds instead of
    one write(2) per line; warnings and errors are flushed at once, and everything at exit."""

    FLUSH_EVERY = 0.2

    def __init__(self, stream):
        super().__init__(stream)
        self._last_flush = time.monotonic()
        self._timer: threading.Timer | None = None
        atexit.register(self._flush_now)

    def flush(self) -> None:  # called by emit() after each line
        pass

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        now = time.monotonic()
        if record.levelno >= logging.WARNING or now - self._last_flush >= self.FLUSH_EVERY:
            self._flush_now()
        elif self._timer is None:  # a quiet period after a burst must not leave lines unwritten
            self._timer = threading.Timer(self.FLUSH_EVERY, self._flush_now)
            self._timer.daemon = True
            self._timer.start()

    def _flush_now(self) -> None:
        self._last_flush = time.monotonic()
        self._timer = None
        with contextlib.suppress(ValueError, OSError):
            logging.StreamHandler.flush(self)


def setup_logging(level: str = "INFO", stream=None) -> None:
    if stream is None:  # our own buffered writer on stderr's descriptor: sys.stderr flushes every line
        stream = open(sys.stderr.fileno(), "w", buffering=1 << 16, closefd=False, encoding="utf-8")
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").disabled = True  # the service writes its own access lines
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # embedded PostgreSQL's command lines
