"""Access logs without secrets or patient data, for gunicorn (see gunicorn.conf.py).

Paths can carry secrets (the token of a patient's private link, a password-reset token) and
query strings can carry patient data (a name typed into the staff queue's search). The access
log keeps the method, the path with those parts replaced, the status, size and timing.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

REDACTED = "[redacted]"
# /manage/open/<token>[/offers/<offer token>], the older /manage/<reference>/<token>[/...],
# /staff/password/reset/<token> and /request/resume/<token> (an unfinished request's link);
# a request's own pages (/manage/<reference>/cancel) keep their names.
_SECRET_PATHS = [
    (re.compile(r"^(/manage/open/)[^/]+"), r"\1" + REDACTED),
    (
        re.compile(
            r"^(/manage/(?!open/)[^/]+/)(?!(?:documents|cancel|reschedule|waitlist|offers)(?:/|$))[^/]+"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(/offers/)[^/]+"), r"\1" + REDACTED),
    (re.compile(r"^(/staff/password/reset/)[^/]+"), r"\1" + REDACTED),
    (re.compile(r"^(/request/resume/)[^/]+"), r"\1" + REDACTED),
]


def redact_path(path: str) -> str:
    """``path`` with its secret segments replaced and any query string dropped."""
    path = path.split("?", 1)[0]
    for pattern, replacement in _SECRET_PATHS:
        path = pattern.sub(replacement, path)
    return path


class RedactingLogger(Logger):
    """gunicorn's logger, with every atom that could hold a secret or patient data redacted."""

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
