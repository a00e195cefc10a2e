"""Logs without secrets or patient data, for gunicorn (see gunicorn.conf.py) and the app.

Paths can carry secrets (the token of a patient's private link, a password-reset token) and
query strings can carry patient data (a name typed into the staff queue's search). The access
log keeps the method, the path with those parts replaced, the status, size and timing. The
error logs (gunicorn's "Error handling request GET /manage/open/<token>", Flask's "Exception
on <path>", a traceback quoting a path) pass through ``RedactingFilter``, which redacts the
same parts wherever a path appears in a message. The outbox keeps a sent email's bodies
through ``redact_text`` too (``booking.notifications.services``): its links, full addresses
in text and in HTML attributes, without their tokens.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from gunicorn.glogging import Logger

REDACTED = "[redacted]"
# /manage/open/<token>[/offers/<offer token>], the older /manage/<reference>/<token>[/...],
# /staff/password/reset/<token>, /request/resume/<token> (an unfinished request's link),
# /follow-up/open/<token>[/stop] (a follow-up questionnaire's link), and
# /manage/confirm-address/<token> (a new email address's confirmation link: read as an older
# link, its token where theirs is); a request's own pages
# (/manage/<reference>/cancel) keep their names. tests/test_access_log.py checks that every
# route with a token in its address is covered.
_SECRET_PATHS = [
    (re.compile(r"^(/manage/open/)[^/]+"), r"\1" + REDACTED),
    (
        re.compile(
            r"^(/manage/(?!open/)[^/]+/)(?!(?:"
            r"documents|answer|cancel|reschedule|waitlist|offers|messages|consent|data|erasure|email"
            r")(?:/|$))[^/]+"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(/offers/)[^/]+"), r"\1" + REDACTED),
    (re.compile(r"^(/staff/password/reset/)[^/]+"), r"\1" + REDACTED),
    (re.compile(r"^(/request/resume/)[^/]+"), r"\1" + REDACTED),
    (re.compile(r"^(/follow-up/open/)[^/]+"), r"\1" + REDACTED),
]


def redact_path(path: str) -> str:
    """``path`` with its secret segments replaced and any query string dropped."""
    path = path.split("?", 1)[0]
    for pattern, replacement in _SECRET_PATHS:
        path = pattern.sub(replacement, path)
    return path


# A path of the kinds above anywhere in a text, up to whitespace or a quote.
_PATH_IN_TEXT = re.compile(
    r"/(?:manage|request/resume|staff/password/reset|follow-up/open)/[^\s\"'<>]*"
)


def redact_text(text: str) -> str:
    """``text`` with every secret-bearing path in it redacted as ``redact_path`` does."""
    return _PATH_IN_TEXT.sub(lambda match: redact_path(match.group(0)), text)


# A whole link anywhere in a text (plain, or an HTML attribute's or element's), up to
# whitespace, a quote or a tag.
_LINK_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+")


def redact_other_sites(text: str, own_host: str) -> str:
    """``text`` with every link to a site other than ``own_host`` (a host[:port], as in
    ``PUBLIC_BASE_URL``) replaced whole: the clinic's own links are redacted by
    ``redact_text``, keeping their page; another site's (the only ones the clinic sends are
    video visits' links to join, which may hold a passcode) may open something as it
    stands, and what of it is secret is not known."""
    own = own_host.lower()

    def elsewhere(match: re.Match[str]) -> str:
        link = match.group(0)
        return link if urlsplit(link).netloc.lower() == own else REDACTED

    return _LINK_IN_TEXT.sub(elsewhere, text)


class RedactingFilter(logging.Filter):
    """Redacts secret paths from a log record: its message, its traceback and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "redacted", False):
            return True
        message = record.getMessage()
        record.msg, record.args = redact_text(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        record.redacted = True
        return True


# The development server's request line: "GET /path?query HTTP/1.1".
_REQUEST_LINE = re.compile(r"([A-Z]+ )(/[^\s\"']*)( HTTP/)")


class DevServerFilter(RedactingFilter):
    """``RedactingFilter`` for the development server's access lines (the ``werkzeug``
    logger, ``make run``): each request's path redacted and its query string dropped, as
    gunicorn's access log does (``RedactingLogger``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "redacted", False):
            return True
        message = _REQUEST_LINE.sub(
            lambda m: (
                m.group(1)
                + redact_path(m.group(2))
                + ("?" + REDACTED if "?" in m.group(2) else "")
                + m.group(3)
            ),
            record.getMessage(),
        )
        record.msg, record.args = message, ()
        return super().filter(record)


class RedactingLogger(Logger):
    """gunicorn's logger, with every atom that could hold a secret or patient data redacted,
    and its error log passed through ``RedactingFilter``."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        redacting = RedactingFilter()
        self.error_log.addFilter(redacting)
        for handler in self.error_log.handlers:
            handler.addFilter(redacting)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        path = redact_path(environ.get("RAW_URI") or environ.get("PATH_INFO") or "")
        atoms["r"] = f"{environ['REQUEST_METHOD']} {path} {environ['SERVER_PROTOCOL']}"
        atoms["U"] = redact_path(environ.get("PATH_INFO") or "")
        atoms["q"] = REDACTED if environ.get("QUERY_STRING") else ""
        atoms["f"] = "-"  # the referrer would carry the previous page's path and query
        # Request/response headers and the environ hold cookies and the raw path: not logged,
        # except the request id that ties this line to the application's log.
        for key in [k for k in atoms if k.endswith(("}i", "}o", "}e"))]:
            if key != "{x-request-id}o":
                atoms[key] = "-"
        return atoms
