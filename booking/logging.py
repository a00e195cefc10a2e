"""Application logs: one line per event with a request id, never patients' data.

The services log ids and outcomes only (request 42 stored, outbox email 7 sent); this module
adds the id of the web request (also sent back as ``X-Request-ID``) so a line can be traced
without writing names, addresses or medical details anywhere.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable

from flask import Flask, g, has_request_context, request
from flask.logging import default_handler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.wrappers import Response

from booking.accesslog import DevServerFilter, RedactingFilter

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{8,64}")
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
WORKER_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LimiterFilter(logging.Filter):
    """Flask-Limiter's lines worth an operator's eye: its warnings and errors (its storage,
    Redis, unreachable: "falling back to in-memory storage", "Swallowing error") and the
    INFO that says the storage is back. Not its other INFO lines: "ratelimit ... exceeded"
    names the limit's key, which may be an email address typed into a form."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.msg == "Rate limit storage recovered"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def init_logging(app: Flask) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        # A proxy's id is kept when it looks like one; otherwise we make our own.
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_RE.fullmatch(incoming) else secrets.token_hex(8)

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    # Tokens in paths are redacted wherever the app logs them: Flask's own "Exception on
    # <path>" (logged on the app's logger, "booking") and anything its modules log.
    redacting = RedactingFilter()
    handler.addFilter(redacting)
    booking_log = logging.getLogger("booking")
    if not any(isinstance(f, RedactingFilter) for f in booking_log.filters):
        booking_log.addFilter(redacting)
    if not any(isinstance(f, RedactingFilter) for f in default_handler.filters):
        default_handler.addFilter(redacting)
    # The development server's access lines (make run): no token, no search term.
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, DevServerFilter) for f in werkzeug_log.filters):
        werkzeug_log.addFilter(DevServerFilter())
    if not app.testing and not any(
        isinstance(h.formatter, logging.Formatter) and h.formatter._fmt == FORMAT
        for h in logging.getLogger("booking").handlers
    ):
        booking_log.addHandler(handler)
        booking_log.setLevel(logging.INFO)
        booking_log.propagate = False
        # Flask-Limiter gives its logger a NullHandler, so under gunicorn (no root handler)
        # its warning that Redis is unreachable and limits are counted in memory went nowhere.
        limiter_log = logging.getLogger("flask-limiter")
        limiter_handler = logging.StreamHandler()
        limiter_handler.setFormatter(handler.formatter)
        for each in (RequestIdFilter(), redacting, LimiterFilter()):
            limiter_handler.addFilter(each)
        limiter_log.addHandler(limiter_handler)
        limiter_log.setLevel(logging.INFO)
        limiter_log.propagate = False


# A storage error again within this long of the last one is the same outage: one line.
STORAGE_ERROR_QUIET_SECONDS = 600


class RepeatedStorageErrorFilter(logging.Filter):
    """Huey's consumer logs an error with its whole traceback (some 40 lines) at every failed
    read or write of its storage: "Error reading from queue" (each worker thread), "Error
    reading schedule." (the scheduler), "Error enqueueing periodic task ..." (each periodic
    job falling due). While Redis is down that is several a minute, for as long as it is
    down, burying every other line; Huey has no setting to log them otherwise.

    This filter, on the worker's handlers, keeps the first such error of each message
    whole, traceback and all (it says what failed and where), and writes each one after it
    as one line: the message, the kind of error and its text, and when the traceback was
    logged. Only for Huey's consumer and an error reaching the storage (a connection refused
    or lost, a timeout): any other error, a bug in a task included, keeps its traceback
    every time. Nothing is dropped. After ``STORAGE_ERROR_QUIET_SECONDS`` with no such error
    the next one is whole again: a new outage. ``clock`` is for the tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._lock = threading.Lock()
        # By message: when the traceback was logged (wall clock, for the line), and when
        # an error of it was last seen (``clock``).
        self._whole: dict[str, tuple[str, float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not record.name.startswith("huey.consumer") or not _storage_unreachable(exc):
            return True
        now, key = self._clock(), str(record.msg)
        with self._lock:
            shown = self._whole.get(key)
            if shown is None or now - shown[1] > STORAGE_ERROR_QUIET_SECONDS:
                at = time.strftime("%H:%M:%S", time.gmtime(record.created))
                self._whole[key] = (at, now)
                return True
            self._whole[key] = (shown[0], now)
        message = record.getMessage().rstrip(".")
        record.msg = "%s: %s: %s (still failing; its traceback was logged at %s UTC)"
        record.args = (message, type(exc).__name__, exc, shown[0])
        record.exc_info = record.exc_text = None
        return True


def _storage_unreachable(exc: BaseException | None) -> bool:
    """Redis refusing, gone, or not answering in time (redis-py's errors, or the socket's)."""
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError))


def init_worker_logging() -> None:
    """The worker's log (``flask worker``): every line through the root handler, Huey's
    "Unhandled exception in task" and its traceback included, passes through the same
    ``RedactingFilter`` as the web app's, so a path with a token that an error quotes is
    redacted there too; while the queue's storage is down, Huey's errors reading it are
    one line each after the first (``RepeatedStorageErrorFilter``). The app's own lines
    (``booking``) keep their handler from ``init_logging``."""
    logging.basicConfig(level=logging.INFO, format=WORKER_FORMAT)
    redacting, repeated = RedactingFilter(), RepeatedStorageErrorFilter()
    for handler in logging.getLogger().handlers:
        # First: the line it makes is redacted too.
        if not any(isinstance(f, RepeatedStorageErrorFilter) for f in handler.filters):
            handler.addFilter(repeated)
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(redacting)
