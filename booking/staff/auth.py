"""Signing staff in: password hashing, the session's user, roles, idle timeout, reset tokens."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import (
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import validate_csrf
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete, select, update
from wtforms.validators import ValidationError

from booking.crypto import text_digest
from booking.extensions import db, login_manager
from booking.forms import typed_answers
from booking.security import LANGUAGE_KEY, cookie_values
from booking.staff.models import StaffRole, StaffSession, StaffUser, new_session_token
from booking.timeutil import now_utc

F = TypeVar("F", bound=Callable[..., Any])


class _Hashing:
    """This app's argon2id hasher, at the cost its config gives (PASSWORD_HASH_*), and a dummy
    hash made with it. Built from ``current_app`` on first use, not at import (which would
    ignore the config), and kept on the app so the dummy is hashed once per app."""

    def __init__(self, config: Any) -> None:
        self.hasher = PasswordHasher(
            time_cost=config["PASSWORD_HASH_TIME_COST"],
            memory_cost=config["PASSWORD_HASH_MEMORY_COST"],
            parallelism=config["PASSWORD_HASH_PARALLELISM"],
        )
        # Verifying against this keeps a login for an unknown address as slow as one for a
        # real account.
        self.dummy_hash = self.hasher.hash("not a real password")


def _hashing() -> _Hashing:
    hashing = current_app.extensions.get("password_hashing")
    if hashing is None:
        hashing = current_app.extensions["password_hashing"] = _Hashing(current_app.config)
    return hashing


MIN_PASSWORD_LENGTH = 12
# What an account that still has to enrol a second factor may reach.
ENROLMENT_ENDPOINTS = frozenset(
    {"staff.two_factor_setup", "staff.logout", "static", "bootstrap.static"}
)


def hash_password(password: str) -> str:
    return _hashing().hasher.hash(password)


def verify_password(user: StaffUser | None, password: str) -> bool:
    """Check a password in constant work whether or not the account exists."""
    hashing = _hashing()
    try:
        return hashing.hasher.verify(
            user.password_hash if user else hashing.dummy_hash, password
        ) and (user is not None)
    except (VerificationError, InvalidHashError):
        return False


def verify_password_hash(stored_hash: str, secret: str) -> bool:
    try:
        return _hashing().hasher.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(user: StaffUser) -> bool:
    return _hashing().hasher.check_needs_rehash(user.password_hash)


def find_staff_by_email(email: str) -> StaffUser | None:
    return db.session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))


SESSION_KEY = "staff_sid"
# How often a session's last_seen_at is written: the idle limit is measured to about this.
SEEN_WRITE_INTERVAL = timedelta(seconds=60)


def start_session(user: StaffUser) -> None:
    """Sign ``user`` in on this browser: a new server-side session, and its id in the cookie.
    The cookie starts afresh, with a new CSRF token: nothing kept in it before the sign-in
    outlives it (only the language chosen). A cookie planted in the browser beforehand (by a
    neighbouring site of the domain, or left on a shared computer) would otherwise carry a
    token its planter knows, or a two-factor secret being enrolled that they saw, into the
    signed-in session. Commits."""
    sid = new_session_token()
    now = now_utc()
    db.session.add(
        StaffSession(
            staff_id=user.id,
            token_hash=text_digest(sid),
            created_at=now,
            last_seen_at=now,
            address=(request.remote_addr or "")[:45] or None,
        )
    )
    db.session.commit()
    language = session.get(LANGUAGE_KEY)
    session.clear()
    # Flask-WTF keeps the request's signed token in g: a page rendered after this gets the new one.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    if language is not None:
        session[LANGUAGE_KEY] = language
    login_user(user)
    session[SESSION_KEY] = sid


def end_session(reason: str) -> None:
    """End this browser's session on the server (a copy of its cookie opens nothing
    afterwards) and forget the user here. Commits."""
    current = g.get("staff_session")
    if current is not None and current.ended_at is None:
        current.ended_at = now_utc()
        current.end_reason = reason
        db.session.commit()
    logout_user()
    session.pop(SESSION_KEY, None)


def end_all_sessions(user: StaffUser, reason: str) -> None:
    """End every session of ``user`` (password change, deactivation); the caller commits."""
    db.session.execute(
        update(StaffSession)
        .where(StaffSession.staff_id == user.id, StaffSession.ended_at.is_(None))
        .values(ended_at=now_utc(), end_reason=reason)
    )


def purge_old_sessions(now: datetime | None = None) -> int:
    """Delete the sessions not seen for ``AUDIT_ADDRESS_DAYS`` (long over: a session lasts
    hours), with the network address each kept; the audit trail keeps the sign-ins. Returns
    how many went (the nightly job)."""
    days = current_app.config.get("AUDIT_ADDRESS_DAYS")
    if not days:
        return 0
    cutoff = (now or now_utc()) - timedelta(days=int(days))
    purged = db.session.execute(
        delete(StaffSession).where(StaffSession.last_seen_at < cutoff)
    ).rowcount
    db.session.commit()
    return purged


def _session_over(staff_session: StaffSession, now: datetime) -> str | None:
    """Why this session must end now, or None."""
    config = current_app.config
    if now - staff_session.created_at >= timedelta(hours=config["STAFF_SESSION_HOURS"]):
        return "expired"
    if now - staff_session.last_seen_at >= timedelta(minutes=config["STAFF_IDLE_MINUTES"]):
        return "idle"
    return None


ENDED_MESSAGES = {
    "idle": _l("You were signed out after a period of inactivity."),
    "expired": _l("Your session reached its time limit. Please sign in again."),
}


def unsaved_text_page(message: str) -> tuple[str, int] | None:
    """For a form posted by someone no longer signed in (idle, over the time limit, signed
    out in another tab) with something typed in it (a note, a name, an address, a date:
    ``typed_answers``), a page saying it was not saved and showing each answer back, under
    its field's label, to copy before signing in again; None when nothing was typed. A post
    cannot be replayed after the sign-in (its token and its intent belong to the session
    that ended), and nothing of it is kept on the server or in a cookie: the page is the one
    place it is shown, to the browser that posted it (its CSRF token is checked, so another
    site cannot put its own text on a page of ours). The text shown is what that screen
    already showed."""
    if request.method != "POST":
        return None
    typed = typed_answers(request.form)
    if not typed:
        return None
    try:
        # A form with a prefix names its token "<prefix>-csrf_token" (as CSRFProtect reads).
        validate_csrf(next((v for k, v in request.form.items() if k.endswith("csrf_token")), None))
    except ValidationError:
        return None
    # Back to the page the form was on, after signing in (the login page keeps staff paths).
    came_from = urlsplit(request.referrer or "")
    back = None
    if came_from.netloc == request.host and came_from.path.startswith("/staff"):
        back = came_from.path + (f"?{came_from.query}" if came_from.query else "")
    page = render_template(
        "staff/unsaved_text.html",
        message=message,
        typed=typed,
        sign_in=url_for("staff.login", next=back),
    )
    return page, 401


def init_auth(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "staff.login"
    login_manager.login_message = _l("Please sign in to see this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(session_token: str) -> StaffUser | None:
        # The account and this browser's server-side session in one query: a cookie whose
        # session was ended (signed out, timed out, password changed) loads no user.
        sid = session.get(SESSION_KEY)
        if not isinstance(sid, str) or not sid:
            return None
        row = db.session.execute(
            select(StaffUser, StaffSession)
            .join(StaffSession, StaffSession.staff_id == StaffUser.id)
            .where(
                StaffUser.session_token == session_token,
                StaffSession.token_hash == text_digest(sid),
                StaffSession.ended_at.is_(None),
            )
        ).first()
        if row is None or not row[0].active:
            return None
        g.staff_session = row[1]
        return row[0]

    @app.before_request
    def end_idle_staff_sessions() -> Any:
        # Patients have no signed-in user: skip loading one (and Flask-Login's strong session
        # protection, which would rewrite their session cookie on every page).
        if "_user_id" not in session or not current_user.is_authenticated:
            return None
        staff_session: StaffSession = g.staff_session
        now = now_utc()
        reason = _session_over(staff_session, now)
        if reason is not None:
            end_session(reason)
            kept = unsaved_text_page(str(ENDED_MESSAGES[reason]))
            if kept is not None:
                return kept
            flash(str(ENDED_MESSAGES[reason]), "info")
            # Come back to the page after signing in (a GET; a form post cannot be replayed).
            target = request.full_path if request.method == "GET" else None
            return redirect(url_for("staff.login", next=target))
        if now - staff_session.last_seen_at >= SEEN_WRITE_INTERVAL:
            staff_session.last_seen_at = now
            db.session.commit()
        # An account that must use a second factor works only after enrolling one.
        # (Staff pages only: patient pages show no staff data, and this costs a query.)
        if (
            request.path.startswith("/staff")
            and not current_user.totp_enabled
            and request.endpoint not in ENROLMENT_ENDPOINTS
            and current_user.needs_second_factor
        ):
            flash(str(_l("Please set up two-factor sign-in to continue.")), "info")
            return redirect(url_for("staff.two_factor_setup"))
        return None


# A browser that completed a sign-in to an account keeps a signed cookie naming it (by the
# digest of its address): its failed attempts at that account are counted for it alone, not
# with everyone else's (LOGIN_ACCOUNT_RATE_LIMIT). Whoever types the account's address
# elsewhere, many times, slows guessing down but does not lock its owner out (OWASP's
# "device cookies"). The cookie proves nothing else: the password and the code are still
# asked.
DEVICE_COOKIE = "staff_device"
DEVICE_DAYS = 180


def _device_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="staff-device")


def _account_digest(email: str) -> str:
    return text_digest(email.strip().lower()[:254])


def device_cookie_for(user: StaffUser) -> str:
    """The cookie's value for a browser that just signed in as ``user``: renewed, with the
    same device id when it had one for the account (its count of failures stays its own)."""
    device = trusted_device(user.email) or secrets.token_hex(8)
    return _device_signer().dumps({"a": _account_digest(user.email), "d": device})


def trusted_device(email: str) -> str | None:
    """This browser's device id, when its cookie was given at a sign-in to the account
    ``email`` names (within DEVICE_DAYS); else None.

    Every value sent under the cookie's name is tried, not only the first
    (``booking.security.cookie_values``): a sibling site on the same domain can set one for
    the sign-in page, and one read first would put this browser's attempts back into the
    count everyone shares, the lock-out the cookie exists to prevent. The plain name stays:
    ``__Host-`` needs ``Path=/``, which would send the cookie with every page rather than
    the sign-in's alone, and once every value is read a planted one changes nothing.
    """
    account = _account_digest(email)
    for raw in cookie_values(DEVICE_COOKIE):
        try:
            data = _device_signer().loads(raw, max_age=DEVICE_DAYS * 86400)
        except BadSignature:  # also SignatureExpired
            continue
        if isinstance(data, dict) and data.get("a") == account and isinstance(data.get("d"), str):
            return data["d"]
    return None


def keep_session_alive() -> None:
    """Count now as this browser's last activity ("Stay signed in" on the warning before the
    idle sign-out, ``static/js/idle-warning.js``): a staff member who types a long note or
    message sends nothing to the server while typing, and would lose it to the idle limit.
    The session's overall limit (STAFF_SESSION_HOURS) still holds."""
    staff_session: StaffSession = g.staff_session
    staff_session.last_seen_at = now_utc()
    db.session.commit()


def roles_required(*roles: StaffRole) -> Callable[[F], F]:
    """Only signed-in staff with one of ``roles`` (any role when none is given)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return (
                    unsaved_text_page(str(login_manager.login_message))
                    or login_manager.unauthorized()
                )
            if roles and current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def _reset_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="staff-password-reset")


def _address_mark(user: StaffUser) -> str:
    return text_digest(user.email)[:16]


def make_reset_token(user: StaffUser) -> str:
    """A signed, expiring token bound to the account's current password and email address:
    once the password changes, the token no longer matches, so each link works once; once an
    admin corrects the address, a link sent to the old one (perhaps someone else's) is over."""
    return _reset_serializer().dumps(
        {"id": user.id, "pw": user.password_hash[-16:], "em": _address_mark(user)}
    )


def _reset_max_age() -> int:
    return current_app.config["PASSWORD_RESET_HOURS"] * 3600


def reset_token_expired(token: str) -> bool:
    """Whether the reset link with ``token`` has expired: PASSWORD_RESET_HOURS have passed
    since it was made (the time signed into the token), as ``user_for_reset_token`` counts
    them. False for a token that is not one of ours (its signature is not good)."""
    try:
        _reset_serializer().loads(token, max_age=_reset_max_age())
    except SignatureExpired:  # raised only once the signature has been found good
        return True
    except BadSignature:
        return False
    return False


def reset_token_expires_at(token: str) -> datetime | None:
    """When the reset link with ``token`` stops working: PASSWORD_RESET_HOURS after the time
    signed into it, as ``user_for_reset_token`` counts them (it works up to that second).
    None for a token that is not one of ours."""
    try:
        _data, signed_at = _reset_serializer().loads(token, return_timestamp=True)
    except BadSignature:
        return None
    return signed_at + timedelta(seconds=_reset_max_age())


def user_for_reset_token(token: str) -> StaffUser | None:
    try:
        data = _reset_serializer().loads(token, max_age=_reset_max_age())
    except (SignatureExpired, BadSignature):
        return None
    return _reset_holder(data)


def reset_token_holder(token: str) -> StaffUser | None:
    """The account the reset link with ``token`` would still open, whatever its age: what
    ``user_for_reset_token`` asks but the expiry (``reset_token_expired`` asks that). None
    when its signature is not good, or the link is over for its account: the password was
    changed since (each link works once), the account deactivated, or its address changed."""
    try:
        data = _reset_serializer().loads(token)  # no max_age: the signature only
    except BadSignature:
        return None
    return _reset_holder(data)


def _reset_holder(data: object) -> StaffUser | None:
    """The active account a reset token's ``data`` names, if its password and address are
    still those the token was made with (``make_reset_token``)."""
    if not isinstance(data, dict):
        return None
    user = db.session.get(StaffUser, data.get("id"))
    if (
        user is None
        or not user.active
        or user.password_hash[-16:] != data.get("pw")
        or _address_mark(user) != data.get("em")
    ):
        return None
    return user
