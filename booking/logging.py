"""Application logs: one line per event with a request id, never patients' data.

The services log ids and outcomes only (request 42 stored, outbox email 7 sent); this module
adds the id of the web request (also sent back as ``X-Request-ID``) so a line can be traced
without writing names, addresses or medical details anywhere.
"""

from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, g, has_request_context, request
from flask.logging import default_handler
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


def init_worker_logging() -> None:
    """The worker's log (``flask worker``): every line through the root handler, Huey's
    "Unhandled exception in task" and its traceback included, passes through the same
    ``RedactingFilter`` as the web app's, so a path with a token that an error quotes is
    redacted there too. The app's own lines (``booking``) keep their handler from
    ``init_logging``."""
    logging.basicConfig(level=logging.INFO, format=WORKER_FORMAT)
    redacting = RedactingFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(redacting)
