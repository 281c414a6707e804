"""JSON-line logs. Only named fields are written (never whole headers or bodies), so no secret leaks."""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import sys
import threading
import time

import msgspec

from .redaction import RedactSecrets

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
        elif record.exc_text:  # already formatted (and redacted) by RedactSecrets
            line["trace"] = record.exc_text
        return _encode(line).decode()


class BatchedStreamHandler(logging.StreamHandler):
    """Info lines (one access line per request) are flushed at most every FLUSH_EVERY seconds instead of one
    write(2) per line; warnings and errors are flushed at once, and everything at exit.

    Lines left in the buffer after a burst are written by one flusher thread, started with the first such
    line in each process (`serve --workers` forks) and woken once per quiet period. Before, a
    threading.Timer per quiet period started a new thread up to five times a second, and the event loop
    waited in Thread.start() each time until the new thread had run (bench/RESULTS.md, hot path)."""

    FLUSH_EVERY = 0.2

    def __init__(self, stream):
        super().__init__(stream)
        self._last_flush = time.monotonic()
        self._unflushed = False  # lines written since the last flush, with the flusher told
        self._wake = threading.Event()
        self._flusher_pid: int | None = None  # the process whose flusher thread runs
        atexit.register(self._flush_now)

    def flush(self) -> None:  # called by emit() after each line
        pass

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self._after_write(urgent=record.levelno >= logging.WARNING)

    def write_line(self, line: str) -> None:
        """An already formatted JSON line (the access log's fast path), batched like info records."""
        with self.lock:
            self.stream.write(line + "\n")
        self._after_write(urgent=False)

    def _after_write(self, urgent: bool) -> None:
        if urgent or time.monotonic() - self._last_flush >= self.FLUSH_EVERY:
            self._flush_now()
        elif not self._unflushed:  # the first line since a flush: a quiet period must not leave it unwritten
            self._unflushed = True
            if self._flusher_pid != os.getpid():
                self._start_flusher()
            self._wake.set()

    def _flush_now(self) -> None:
        self._last_flush = time.monotonic()
        self._unflushed = False
        with contextlib.suppress(ValueError, OSError):
            logging.StreamHandler.flush(self)

    def _start_flusher(self) -> None:
        self._flusher_pid = os.getpid()
        self._wake = threading.Event()  # a forked child must not share its parent's
        threading.Thread(target=self._flush_after_quiet, args=(self._wake,), name="log-flusher",
                         daemon=True).start()

    def _flush_after_quiet(self, wake: threading.Event) -> None:
        while True:
            wake.wait()
            wake.clear()
            # Until a flush has taken every line: the writing thread's own (a busy process flushes as it
            # writes, and then this thread writes nothing) or, after FLUSH_EVERY of quiet, this one's.
            while self._unflushed:
                time.sleep(max(self._last_flush + self.FLUSH_EVERY - time.monotonic(), 0.01))
                if self._unflushed and time.monotonic() - self._last_flush >= self.FLUSH_EVERY:
                    self._flush_now()


access_logger = logging.getLogger("service.access")
_fast_access_stream = None  # set by setup_logging: the service's own log stream


@functools.lru_cache(maxsize=4)
def _second_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def log_access(request_id: str, method: str, route: str, status: int, seconds: float,
               trace_id: str | None = None) -> None:
    """One JSON line per request. In the running service (setup_logging) the line is encoded and
    written straight to the batched log stream: the logging module's record and formatter machinery
    cost ~8% of a user read in the profile. Elsewhere (tests, embedding) it goes through logging."""
    if not access_logger.isEnabledFor(logging.INFO):
        return
    ms = round(seconds * 1000, 2)
    if _fast_access_stream is not None:
        # Formatted directly: none of these values can hold a character JSON would escape (the request
        # id is checked against [A-Za-z0-9._:-], the method is an HTTP token, the route one of ours, the
        # trace id hex digits).
        now = time.time()
        trace = f',"trace_id":"{trace_id}"' if trace_id else ""
        _fast_access_stream.write_line(
            f'{{"ts":"{_second_text(int(now))}.{int(now % 1 * 1000):03d}Z","level":"info",'
            f'"logger":"service.access","msg":"request","request_id":"{request_id}","method":"{method}",'
            f'"route":"{route}","status":{status},"ms":{ms}{trace}}}')
    else:
        extra = {"request_id": request_id, "method": method, "route": route, "status": status, "ms": ms}
        if trace_id:
            extra["trace_id"] = trace_id
        access_logger.info("request", extra=extra)


def setup_logging(level: str = "INFO", stream=None) -> None:
    if stream is None:  # our own buffered writer on stderr's descriptor: sys.stderr flushes every line
        stream = open(sys.stderr.fileno(), "w", buffering=1 << 16, closefd=False, encoding="utf-8")
    handler = BatchedStreamHandler(stream)
    global _fast_access_stream
    _fast_access_stream = handler
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets())  # every logger, aiohttp's and warnings' too (redaction.py)
    logging.captureWarnings(True)  # warnings become log records, so they pass the filter too
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").disabled = True  # the service writes its own access lines
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # embedded PostgreSQL's command lines
