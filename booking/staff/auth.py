"""Signing staff in: password hashing, the session's user, roles, idle timeout, reset tokens."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, abort, current_app, flash, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, logout_user
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from booking.extensions import db, login_manager
from booking.staff.models import StaffRole, StaffUser
from booking.timeutil import now_utc

F = TypeVar("F", bound=Callable[..., Any])

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
# Verifying against this keeps a login for an unknown address as slow as one for a real account.
_DUMMY_HASH = _hasher.hash("not a real password")

MIN_PASSWORD_LENGTH = 12
# What an account that still has to enrol a second factor may reach.
ENROLMENT_ENDPOINTS = frozenset(
    {"staff.two_factor_setup", "staff.logout", "static", "bootstrap.static"}
)
LAST_SEEN_KEY = "staff_last_seen"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: StaffUser | None, password: str) -> bool:
    """Check a password in constant work whether or not the account exists."""
    try:
        return _hasher.verify(user.password_hash if user else _DUMMY_HASH, password) and (
            user is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def verify_password_hash(stored_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(user: StaffUser) -> bool:
    return _hasher.check_needs_rehash(user.password_hash)


def find_staff_by_email(email: str) -> StaffUser | None:
    return db.session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))


def init_auth(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "staff.login"
    login_manager.login_message = _l("Please sign in to see this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(session_token: str) -> StaffUser | None:
        user = db.session.scalar(select(StaffUser).where(StaffUser.session_token == session_token))
        return user if user is not None and user.active else None

    @app.before_request
    def end_idle_staff_sessions() -> Any:
        # Patients have no signed-in user: skip loading one (and Flask-Login's strong session
        # protection, which would rewrite their session cookie on every page).
        if "_user_id" not in session or not current_user.is_authenticated:
            return None
        idle = timedelta(minutes=app.config["STAFF_IDLE_MINUTES"])
        now = now_utc().timestamp()
        last_seen = session.get(LAST_SEEN_KEY)
        if last_seen is not None and now - float(last_seen) > idle.total_seconds():
            logout_user()
            session.pop(LAST_SEEN_KEY, None)
            flash(str(_l("You were signed out after a period of inactivity.")), "info")
            # Come back to the page after signing in (a GET; a form post cannot be replayed).
            target = request.full_path if request.method == "GET" else None
            return redirect(url_for("staff.login", next=target))
        session[LAST_SEEN_KEY] = now
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


def roles_required(*roles: StaffRole) -> Callable[[F], F]:
    """Only signed-in staff with one of ``roles`` (any role when none is given)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if roles and current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def _reset_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="staff-password-reset")


def make_reset_token(user: StaffUser) -> str:
    """A signed, expiring token bound to the account's current password: once the password
    changes, the token no longer matches, so each link works once."""
    return _reset_serializer().dumps({"id": user.id, "pw": user.password_hash[-16:]})


def user_for_reset_token(token: str) -> StaffUser | None:
    max_age = current_app.config["PASSWORD_RESET_HOURS"] * 3600
    try:
        data = _reset_serializer().loads(token, max_age=max_age)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict):
        return None
    user = db.session.get(StaffUser, data.get("id"))
    if user is None or not user.active or user.password_hash[-16:] != data.get("pw"):
        return None
    return user
