"""Friendly error pages: a patient never sees a stack trace or a raw status line."""

from __future__ import annotations

import errno
import logging
from typing import NoReturn

from flask import Flask, abort, jsonify, make_response, render_template, request
from flask.globals import request_ctx
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from booking.crypto import KeyMissingError
from booking.extensions import db

log = logging.getLogger(__name__)

HOUR = 3600  # seconds: a rate limit whose window is longer is a day's
# A disk with no room left (or over its quota): the server's temporary folder, where Werkzeug
# spools each file over 500 KB of a form while it reads it, or the upload folder.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})

# A form whose change the database failed to store, or to confirm it stored (the commit's
# answer lost): shown again with what was typed, instead of the bare 503 page without it.
NOT_CONFIRMED = _l(
    "Our system had a problem, so we cannot confirm that this was sent. What you wrote is "
    "still below: please check your page in a few minutes and send it again if it is not "
    "there."
)


def error_page(
    status: int, title: str, message: str, staff: bool = False
) -> tuple[str | Response, int]:
    """The friendly error page every handler answers with (features register their own). A
    script that asked for JSON (a file's upload, ``static/js/uploads.js``) gets the message
    to show next to the file instead. ``staff``: in the staff pages' frame (no patient
    emergency banner or request form; the menu for a signed-in staff member, and a way back
    to the sign-in page for one who is not)."""
    if request.accept_mimetypes.best == "application/json":
        return jsonify(ok=False, message=message), status
    page = render_template(
        "errors/error.html", status=status, title=title, message=message, staff=staff
    )
    return page, status


# Form fields never shown back on the expired-form page: secrets, one-time codes and tokens
# ("confirm": a new password typed again), and no field of the staff accounts' pages (signing
# in, passwords, two-factor), whatever its name.
_NEVER_SHOWN = ("password", "confirm", "token", "csrf", "code", "otp", "totp", "secret", "key")
_NEVER_SHOWN_BLUEPRINTS = frozenset({"staff"})
_MAX_SHOWN = 10


def typed_text() -> list[str]:
    """What a refused form's free-text fields held (a note, a message, a reason), to show back
    on the expired-form page so it can be copied: a staff member whose session ended while
    they wrote a long note, or a patient whose message form sat open overnight, otherwise
    lost it. Only text with words in it (not codes, dates or choices), never a field whose
    name says it holds a secret, and only for a form this site's own page sent: a form
    another site made the browser post is never shown back on this site's page."""
    from booking.security import check_same_origin

    if request.blueprint in _NEVER_SHOWN_BLUEPRINTS:
        return []
    if request.method != "POST" or request.mimetype not in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        return []
    try:
        check_same_origin()
    except CSRFError:
        return []
    shown = []
    for name, value in request.form.items(multi=True):
        text = value.strip()
        if any(word in name.lower() for word in _NEVER_SHOWN) or len(text) < 10:
            continue
        if any(ch.isspace() for ch in text):
            shown.append(text)
    return shown[:_MAX_SHOWN]


def _is_staff_path() -> bool:
    """Whether the page is a staff one, signed in or not: an error on the sign-in page (too
    many attempts, a form that expired) answered in the patients' frame, with its emergency
    banner and request form, left staff no way back to signing in. Decided by the address,
    not the session, which a signed-out visitor does not have. Not for the 500 and 503
    pages: the staff frame asks the database who is signed in, which may be what failed."""
    return request.path == "/staff" or request.path.startswith("/staff/")


def end_sessions_before_responding(app: Flask) -> None:
    """End the request's database session before its response leaves, not in the teardown.

    Flask-SQLAlchemy ends it in the app context's teardown, after the response is made: a
    database that fails there (the rollback during a PostgreSQL restart) escapes the app,
    and the server answers a bare 500 with no page and no request id. Ended here, such an
    error is answered with the 503 page (and the request id, added by ``booking.logging``,
    whose hook runs after this one). Call it before any other ``after_request`` is registered
    but the request id's, so it runs after them.
    """

    @app.after_request
    def _end_session(response: Response) -> Response:
        if not _owns_app_context():
            # Code that pushed the app context (a CLI command, a test) made this request
            # inside it and still uses the session: its teardown ends the session, as before.
            return response
        try:
            db.session.remove()
        except (OperationalError, InterfaceError) as error:
            log.error("database failed at the end of a request: %s", type(error).__name__)
            _discard_session()
            page, status = error_page(
                503,
                _("We are having a technical problem"),
                _(
                    "Our system had a problem while finishing your request, so we cannot "
                    "confirm it was saved. Please try again in a few minutes. If your symptoms "
                    "are severe, do not wait: call the clinic or seek emergency care."
                ),
            )
            response = make_response(page, status)
            response.headers["Retry-After"] = "60"
        return response


def _owns_app_context() -> bool:
    """Whether this request pushed its own app context (as every request a server handles
    does), so the session is the request's alone. Flask records, for the request context,
    the app context it pushed (None when one was already there)."""
    tokens = getattr(request_ctx._get_current_object(), "_cv_tokens", None)
    return not tokens or tokens[-1][1] is not None


def _discard_session() -> None:
    """Forget a session whose connection failed: its connection is invalidated (the pool
    opens a new one), and the teardown finds nothing left to close."""
    try:
        db.session().invalidate()
    except Exception:  # the connection is already gone; nothing more to release
        log.debug("session invalidate failed", exc_info=True)
    db.session.registry.clear()


def _discard_unread_body() -> None:
    """Read what is left of a post whose reading failed, without keeping it: answered while
    the proxy is still sending it, the connection would be closed under the proxy, which then
    answers 502 instead of this page."""
    try:
        while request.stream.read(64 * 1024):
            pass
    except Exception:  # the client or proxy went away: nothing left to answer anyway
        log.debug("could not read the rest of a failed post", exc_info=True)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(_error: CSRFError) -> tuple[str | Response, int]:
        typed = typed_text()
        if typed and request.accept_mimetypes.best != "application/json":
            page = render_template("errors/expired_form.html", typed=typed, staff=_is_staff_path())
            return page, 400
        return error_page(
            400,
            _("This form has expired"),
            _(
                "For your security, forms stop working after a while or when cookies are "
                "blocked. Nothing was saved. Please go back, reload the page and send it again."
            ),
            staff=_is_staff_path(),
        )

    @app.errorhandler(413)
    def too_large(_error: HTTPException) -> tuple[str | Response, int]:
        if request.mimetype != "multipart/form-data":  # no files: the text is too long
            return error_page(
                413,
                _("Your answers are too long"),
                _(
                    "The text you sent is much longer than any of our questions takes, so "
                    "nothing of it was saved. Please go back and shorten your answers; "
                    "answers you saved on earlier steps are kept."
                ),
            )
        limit = app.config["MAX_DOCUMENT_MB"]
        return error_page(
            413,
            _("Your documents are too large"),
            _(
                "Together, the files you attached are larger than we can accept. Nothing was "
                "saved. Each file may be up to %(mb)d MB and you can send at most %(n)d files. "
                "Please go back and attach smaller files, or bring the rest to your appointment.",
                mb=limit,
                n=app.config["MAX_DOCUMENTS"],
            ),
        )

    @app.get("/request-too-large")
    def request_too_large() -> NoReturn:
        """Where the proxy sends a request it refused as too large before the application
        saw it (``error_page 413`` in deploy/nginx/spineconsult.conf): this page, in the
        patient's language, instead of nginx's bare one. The proxy keeps the request's
        Content-Type and Accept, so the message fits what was sent and how."""
        abort(413)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str | Response, int]:
        code = error.code or 500
        titles = {
            400: _("Something was wrong with that request"),
            403: _("You do not have access to this page"),
            404: _("Page not found"),
            405: _("That action is not possible here"),
            429: _("Too many attempts"),
        }
        messages = {
            404: _("The page you asked for does not exist. Check the address, or start again."),
            429: _("Please wait a minute and try again."),
        }
        if isinstance(error, RateLimitExceeded) and error.response is not None:
            # A limit that answers with a page of its own (its ``on_breach``): the emergency
            # call-back's, which still says what to do now.
            return error.response, code
        if isinstance(error, RateLimitExceeded) and error.limit.error_message:
            # A limit that says in its own words what was refused and how long to wait.
            messages[429] = error.description or messages[429]
        elif code == 429 and request.path == "/request/steps/documents":
            messages[429] = _(
                "Your answers and the documents already added are saved. Please wait a few "
                "minutes, then add this file again."
            )
        elif code == 429 and request.path.startswith("/manage/") and request.path.endswith("/data"):
            # PATIENT_EXPORT_RATE_LIMIT: a few copies, or tries at the date of birth, an hour,
            # and a few more a day (a longer window: the day's limit was the one reached).
            if isinstance(error, RateLimitExceeded) and error.limit.limit.get_expiry() > HOUR:
                messages[429] = _(
                    "You have asked for a copy of your data many times today. For your "
                    "security, please open your private link again tomorrow."
                )
            else:
                messages[429] = _(
                    "You have asked for a copy of your data several times in the last hour. "
                    "For your security, please wait an hour, then open your private link again."
                )
        elif code == 429 and request.path.startswith("/request/steps/"):
            # The request's steps are saved in a draft as the patient goes: nothing is lost.
            messages[429] = _(
                "Your answers and documents are saved. Please wait a minute, then go back "
                "and send your request again."
            )
        return error_page(
            code,
            titles.get(code, _("Something went wrong")),
            messages.get(code, _("Please go back and try again.")),
            staff=_is_staff_path(),
        )

    @app.errorhandler(OSError)
    def no_space_left(error: OSError) -> tuple[str | Response, int]:
        """A full disk while a form is read (its files spooled to the temporary folder, before
        any view runs) or stored: nothing of the post was saved, and it is the server's fault,
        not the patient's file. The upload script shows the message beside the file; without
        it the page says so. Any other OSError is the unexpected error it was (the 500 page,
        logged with its traceback)."""
        if error.errno not in NO_SPACE:
            raise error
        log.error("no space left on a disk while a request was read or stored: %s", error)
        db.session.rollback()
        _discard_unread_body()
        page, status = error_page(
            503,
            _("We could not store what you sent"),
            _(
                "Our system is short of storage space just now, so what you sent was not "
                "saved. Anything you saved before is kept. Please try again later."
            ),
        )
        response = make_response(page, status)
        response.headers["Retry-After"] = "300"
        return response, status

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(error: Exception) -> tuple[str | Response, int]:
        db.session.rollback()
        log.error("database unavailable: %s", type(error).__name__)
        # Not "nothing was saved": the database may have committed before its answer was
        # lost (a restart, a cut network).
        return error_page(
            503,
            _("We are having a technical problem"),
            _(
                "Our system had a problem while finishing your request, so we cannot "
                "confirm it was saved. Please try again in a few minutes. If your symptoms "
                "are severe, do not wait: call the clinic or seek emergency care."
            ),
        )

    @app.errorhandler(KeyMissingError)
    def key_missing(error: KeyMissingError) -> tuple[str | Response, int]:
        log.error("encryption key %s is not configured", error.key_id)
        return error_page(
            503,
            _("This document cannot be opened"),
            _(
                "It is stored encrypted with a key (id %(key)s) that this server is not "
                "configured with. Nothing is lost as long as that key exists: ask the "
                "administrator to add it to ENCRYPTION_OLD_KEYS.",
                key=error.key_id,
            ),
        )

    @app.errorhandler(500)
    def internal_error(_error: Exception) -> tuple[str | Response, int]:
        db.session.rollback()
        return error_page(
            500,
            _("Something went wrong"),
            _(
                "An unexpected error stopped us. Nothing was saved. Please try again; if it "
                "happens again, call the clinic."
            ),
        )
