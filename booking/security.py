"""Rules every response and every form post follows: security headers, same-origin posts.

One place for what the browser is told (Content-Security-Policy, framing, referrers, HSTS)
and for what a state-changing request must show before any view runs.

Referrers: ``Referrer-Policy: same-origin``. A link to another site carries no referrer at all,
so nothing of a page's address (a request's reference, a patient's private link) leaves the
site; within the site the browser sends it, and it sends ``Origin`` on every form post, which
the check below needs. (``no-referrer`` made Chromium send ``Origin: null`` and no ``Referer``,
so no form could be sent over HTTPS.) The manage link's token never stays in an address bar to
leak: it is exchanged for a cookie on the first visit (``booking.manage.views``).

Cross-site form posts: Flask-WTF's token check stays on everywhere. Its "strict" HTTPS check,
which demands a same-origin ``Referer``, is replaced by :func:`check_same_origin`, which reads
``Origin`` (sent by every current browser on a POST), else ``Sec-Fetch-Site``, else the
``Referer``; over HTTPS one of them must be present and name this site.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app, request, session
from flask_babel import lazy_gettext as _l
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError
from limits import parse_many
from werkzeug.wrappers import Response

from booking.crypto import DecryptionError, KeyMissingError, decrypt_text, encrypt_text, text_digest
from booking.extensions import limiter, talisman

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
REFERRER_POLICY = "same-origin"


def init_security(app: Flask) -> None:
    # Registered before Talisman's, so they run after it (Flask runs them in reverse order).
    app.after_request(_no_referrer_from_token_addresses)
    app.after_request(never_stored)
    talisman.init_app(
        app,
        force_https=app.config["FORCE_HTTPS"],
        strict_transport_security=app.config["FORCE_HTTPS"],
        strict_transport_security_max_age=365 * 24 * 3600,
        session_cookie_secure=app.config.get("SESSION_COOKIE_SECURE", False),
        session_cookie_http_only=True,
        content_security_policy=app.config["CONTENT_SECURITY_POLICY"],
        frame_options="DENY",
        referrer_policy=REFERRER_POLICY,
        x_content_type_options=True,
    )
    app.before_request(check_same_origin)


def seal_in_session(key: str, secret: str) -> None:
    """Keep a secret (a link's token, a two-factor secret being enrolled) in the session,
    encrypted: Flask's session cookie is signed, not encrypted, so a cookie read (a shared
    computer, a copied browser profile) must give nothing away."""
    session[key] = encrypt_text(secret)


def sealed_in_session(key: str) -> str | None:
    """The secret ``seal_in_session`` kept under ``key``; None when there is none, or it
    no longer opens (sealed with a key since retired, or not ours)."""
    sealed = session.get(key)
    if not sealed:
        return None
    try:
        return decrypt_text(sealed)
    except (DecryptionError, KeyMissingError):
        return None


def token_in_url(view: F) -> F:
    """Mark a view whose address carries a secret: its response sends no referrer at all."""
    view.token_in_url = True  # type: ignore[attr-defined]
    return view


def _no_referrer_from_token_addresses(response: Response) -> Response:
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "token_in_url", False):
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


# ---- the pages a patient's private link opens (the manage page, the follow-up pages) --------


def address_key(kind: str, address: str) -> str:
    """A rate limit's key for an email address, whatever the network address: ``kind`` and
    the address's digest, case and spaces aside (the limiter's storage holds no address)."""
    return f"{kind}:" + text_digest(address.strip().lower()[:254])


def typed_address_key(kind: str) -> str:
    """``address_key`` of the address a form posts (its ``email`` field)."""
    return address_key(kind, request.form.get("email") or "")


def count_for_address(kind: str, address: str, limits: str) -> bool:
    """Count one more ``kind`` for the email ``address`` (``address_key``) against ``limits``
    ("5 per hour; 20 per day"), unless one of them is reached: whether it was counted. For
    something extra that is held back past the limit (an email) while what was asked is done
    anyway: with the limits turned off, or their storage failing (logged), it is counted as
    within, so a limit is never the reason a patient's request is lost."""
    return _count_within(kind, address_key(kind, address), limits)


def count_for_network_address(kind: str, limits: str) -> bool:
    """``count_for_address``, for the network address the request comes from (the limiter's
    own key): for something done past a route's limit, but held back when it is reached."""
    return _count_within(kind, f"{kind}:{get_remote_address()}", limits)


def _count_within(kind: str, key: str, limits: str) -> bool:
    if not limiter.enabled:
        return True
    try:
        items = parse_many(limits)
        strategy = limiter.limiter  # the in-memory fallback's while Redis is away
        if not all(strategy.test(item, key) for item in items):
            return False
        for item in items:
            strategy.hit(item, key)
    except Exception:  # whatever the storage raises: within, never a lost request
        log.warning("the %s limit could not be counted; treated as within it", kind, exc_info=True)
    return True


def private_link_limit() -> str:
    """Their rate limit per address: a guessed link is slow to find."""
    return current_app.config["MANAGE_RATE_LIMIT"]


def not_indexed(response: Response) -> Response:
    """An ``after_request`` hook: a patient's own pages are never indexed (never stored
    either: ``never_stored``)."""
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


# The session key of the language a patient chose (``?lang=``; ``booking._select_locale``).
LANGUAGE_KEY = "language"


def keep_request_language(locale: str) -> None:
    """A private link opened where the patient has not chosen a language shows the pages in
    the request's (the one they wrote it in, and its emails are in); the switcher still
    changes it."""
    if LANGUAGE_KEY not in session and locale in current_app.config["LANGUAGES"]:
        session[LANGUAGE_KEY] = locale


def set_link_cookie(
    response: Response, name: str, token: str, path: str, minutes: int | None = None
) -> Response:
    """Trade a private link's token for a cookie on ``path`` only, so the token leaves the
    address bar, the history and any Referer at once; it lasts ``minutes`` (by default
    ``MANAGE_COOKIE_MINUTES``).

    The cookie keeps its plain name, without the ``__Host-`` prefix the session cookie has in
    production: browsers keep a ``__Host-`` cookie only for ``Path=/``, and the path is what
    keeps each request's (or questionnaire's) cookie to its own pages, so that a patient with
    two open in two tabs sends each page its own. ``__Secure-`` would keep out only a cookie
    planted over plain http, not one from a sibling site over https, and a Secure cookie is
    already one that plain http cannot overwrite. What a planted cookie of the same name
    could do, hide the patient's own, :func:`cookie_values` undoes: the pages read every
    value the browser sends and take the one that opens them.
    """
    response.set_cookie(
        name,
        token,
        max_age=(minutes or current_app.config["MANAGE_COOKIE_MINUTES"]) * 60,
        path=path,
        secure=request.is_secure or bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        httponly=True,
        samesite="Lax",
    )
    return response


# Longer than any value this application sets (a link's token is 43 characters, the staff
# device cookie about 150): anything longer is someone else's and is not even looked up.
COOKIE_VALUE_MAX = 300


def cookie_values(name: str) -> list[str]:
    """Every value this request's browser sent for the cookie ``name``, in the order sent,
    without repeats, leaving out any this application never sets (empty, too long, not
    ASCII).

    A browser sends several cookies of one name when they were set for different domains or
    paths: a sibling site on the same registrable domain (or anyone answering one of its
    addresses over plain http) can set ``name`` for the whole domain and this cookie's path,
    and the browser may then send that one first. A page that read only the first value
    would refuse the patient whose own cookie came second: every value is tried instead, and
    the page opens with the one that is valid.
    """
    sent = request.cookies.getlist(name)
    kept = (value for value in sent if 0 < len(value) <= COOKIE_VALUE_MAX and value.isascii())
    return list(dict.fromkeys(kept))


# Files the same for everyone (CSS, scripts, fonts): the only responses a browser or proxy
# may keep.
STATIC_ENDPOINTS = frozenset({"static", "bootstrap.static"})
NO_STORE = "no-store, private"


def never_stored(response: Response) -> Response:
    """No page or download of this application is kept by a browser or a proxy.

    One rule instead of a list of "pages with patient data": staff pages and downloads, the
    submitted page, the manage pages, a form shown again with the answers typed, and every
    page carrying a session's CSRF token are all covered, and a new page is covered before
    anyone decides whether it shows patient data. Only static files are cacheable.
    """
    if request.endpoint not in STATIC_ENDPOINTS:
        response.headers["Cache-Control"] = NO_STORE
        response.headers.pop("Expires", None)
    return response


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin() -> None:
    """Refuse a state-changing request that another site made the browser send.

    A present ``Origin`` must be this site's (``null``, sent by sandboxed frames and under
    ``no-referrer``, is refused). Without one, ``Sec-Fetch-Site`` must say ``same-origin`` (or
    ``none``: typed by the user). Over HTTPS, a request showing neither must carry a same-origin
    ``Referer``, as Flask-WTF's strict mode asked; over plain HTTP (development, tests) a
    request showing nothing is left to the token check.
    """
    if request.method in SAFE_METHODS:
        return
    own = f"{request.scheme}://{request.host}".lower()
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin.strip().lower() != own:
            raise CSRFError(str(_l("The form was sent from another site.")))
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site.strip().lower() not in ("same-origin", "none"):
            raise CSRFError(str(_l("The form was sent from another site.")))
        return
    if not request.is_secure:
        return
    referrer = request.headers.get("Referer")
    if referrer is None or _origin_of(referrer) != own:
        raise CSRFError(str(_l("The form did not say which site it came from.")))
